"""Scoring predictions: challenge metrics, calibration, selective prediction, ensemble validation and OOD detection."""
