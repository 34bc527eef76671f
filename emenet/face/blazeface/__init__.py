"""MediaPipe's BlazeFace face detectors, natively in PyTorch, with their weights shipped here.

The weights in `weights/` were converted from MediaPipe's `face_detection_short_range.tflite`
and `face_detection_full_range.tflite` (Apache License 2.0; see weights/NOTICE) by
scripts/convert_blazeface.py.
"""
from emenet.face.blazeface.detector import BlazeFaceDetector
from emenet.face.blazeface.network import BlazeFaceNet, load_blazeface

__all__ = ["BlazeFaceDetector", "BlazeFaceNet", "load_blazeface"]
