"""The ABAW challenge: the test-set index and submission files (one per video and task, per release)."""
