"""Split-conformal prediction sets and intervals for EMENet's per-frame distributions.

`scores` holds the math (pure numpy), `calibrate` fits and saves a calibration for an ensemble,
`apply` adds the sets, intervals and abstain flags to per-frame prediction tables.
"""
