"""Optional extras, gated in one place: which are installed, and the hint when one is missing."""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from emenet.errors import EMENetInputError

# module name -> the pip extra that provides it
EXTRAS = {"ray": "ray", "onnxruntime": "onnx", "nemo": "nemo", "silero_vad": "vad", "plotly": "report",
          "tflite": "tflite", "ai_edge_litert": "tflite"}


def is_available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str) -> ModuleType:
    """Import an optional dependency or fail with one line saying how to install it."""
    if not is_available(module):
        extra = EXTRAS.get(module, module)
        raise EMENetInputError(f"{module} is not installed; install the extra with: pip install 'emenet[{extra}]'")
    return importlib.import_module(module)
