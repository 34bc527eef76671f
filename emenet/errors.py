"""Errors that describe a user's mistake; entry points print them as one line, no traceback."""
from __future__ import annotations


class EMENetInputError(ValueError):
    """Bad user input: a missing or malformed file, an unknown name, mismatching checkpoints."""
