"""Strict weight loading: the key set and every shape asserted before `load_state_dict(strict=True)`.

Its own module so that the model files (MarbleNet's NeMo import) and the checkpoint reader,
which imports the models, share it without importing each other.
"""
from __future__ import annotations

import torch
from torch import nn

from emenet.errors import EMENetInputError


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Assert the key set and every shape, then `load_state_dict(strict=True)`."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise EMENetInputError(f"{source}: keys do not match the model "
                               f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                               f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})")
    wrong = [f"{k}: {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in state_dict.items() if v.shape != expected[k].shape]
    if wrong:
        raise EMENetInputError(f"{source}: shapes do not match the model ({'; '.join(wrong[:5])})")
    model.load_state_dict(state_dict, strict=True)
