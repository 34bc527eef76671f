"""Training one model: config, trainer and hooks, objectives, validation and whole runs (teachers and students)."""
