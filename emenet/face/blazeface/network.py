"""BlazeFace in PyTorch: the network MediaPipe ships as `.tflite`, run as torch layers.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on
Mobile GPUs") is a stack of "BlazeBlocks": a 3x3 depthwise convolution, a 1x1 convolution,
a residual connection (max-pooled and zero-padded in channels where the block downsamples or
widens) and a ReLU. The short-range model (128x128 input) has two SSD heads, on a 16x16 and an
8x8 map; the full-range model (192x192) adds a feature pyramid (bilinear upsampling) and
predicts from one 48x48 map.

The wiring of each model is its graph spec, `weights/<model>.json`, made from the `.tflite`
flatbuffer by `emenet.face.blazeface.convert` (scripts/convert_blazeface.py): one node per
operator, in the order the flatbuffer lists them (already topological). `BlazeFaceNet` holds
one `nn.Conv2d` per convolution (named as in the flatbuffer) and runs the nodes; there is no
interpretation at run time beyond that list, so it exports to ONNX as a plain graph.

Input: (N, 3, H, W) RGB in [-1, 1] at the model's size. Output: regressors (N, A, 16) and
raw score logits (N, A) for A anchors (896 short-range, 2304 full-range).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"
MODELS = ("short_range", "full_range")


def model_files(model: str) -> tuple[Path, Path]:
    """(graph spec .json, weights .npz) of a shipped model."""
    if model not in MODELS:
        raise ValueError(f"unknown BlazeFace model {model!r}; valid: {', '.join(MODELS)}")
    return WEIGHTS_DIR / f"{model}.json", WEIGHTS_DIR / f"{model}.npz"


class BlazeFaceNet(nn.Module):
    """The BlazeFace network described by a graph spec (see the module docstring)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.input_size: tuple[int, int] = tuple(spec["input"])
        self._input_tensor = spec["input_tensor"]
        self._nodes = spec["nodes"]
        self._outputs = spec["outputs"]
        self.convs = nn.ModuleDict()
        for node in self._nodes:
            if node["op"] == "conv":
                self.convs[node["name"]] = _conv_for(node)
        # Each tensor is freed after its last use, so the forward pass keeps only live maps.
        last_use: dict[int, int] = {}
        for i, node in enumerate(self._nodes):
            for tensor in _inputs(node):
                last_use[tensor] = i
        self._free_after = [[t for t in _inputs(node) if last_use[t] == i and t not in self._outputs]
                            for i, node in enumerate(self._nodes)]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) in [-1, 1] -> regressors (N, A, 16), score logits (N, A)."""
        values: dict[int, torch.Tensor] = {self._input_tensor: images}
        for node, free in zip(self._nodes, self._free_after):
            values[node["out"]] = self._run(node, values)
            for tensor in free:
                del values[tensor]
        regressors, scores = (values[t] for t in self._outputs)
        return regressors, scores.squeeze(-1)

    def _run(self, node: dict, values: dict[int, torch.Tensor]) -> torch.Tensor:
        op = node["op"]
        if op == "conv":
            top, bottom, left, right = node["pad"]
            x = values[node["in"]]
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
            x = self.convs[node["name"]](x)
            return F.relu(x) if node["relu"] else x
        if op == "relu":
            return F.relu(values[node["in"]])
        if op == "add":
            a, b = node["in"]
            return values[a] + values[b]
        if op == "pad_channels":
            return F.pad(values[node["in"]], (0, 0, 0, 0, 0, node["extra"]))  # zero channels at the end
        if op == "maxpool":
            top, bottom, left, right = node["pad"]
            x = values[node["in"]]
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            return F.max_pool2d(x, node["kernel"], node["stride"])
        if op == "resize_bilinear":
            if node["align_corners"] == node["half_pixel_centers"]:
                raise ValueError("BlazeFaceNet supports bilinear resizing with either aligned corners or "
                                 "half-pixel centres")
            x = values[node["in"]]
            (height, width), (out_h, out_w) = x.shape[-2:], node["size"]
            if out_h % height == 0 and out_w % width == 0:
                # The same sampling as size=..., but exported with constant scales, which ONNX
                # Runtime runs in its blocked layout (a size computed from Shape it cannot).
                return F.interpolate(x, scale_factor=(out_h // height, out_w // width), mode="bilinear",
                                     align_corners=node["align_corners"])
            return F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=node["align_corners"])
        if op == "to_anchors":
            x = values[node["in"]]  # (N, C, H, W); TFLite's NHWC order: anchor = (y, x, k)
            return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, node["values"])
        if op == "concat_anchors":
            return torch.cat([values[t] for t in node["in"]], dim=1)
        raise ValueError(f"BlazeFaceNet: unknown node {op!r}")


def _inputs(node: dict) -> list[int]:
    return list(node["in"]) if isinstance(node["in"], list) else [node["in"]]


def _conv_for(node: dict) -> nn.Conv2d:
    # Shapes come from the weights at load time; build with placeholders of the right rank.
    return _LazyConv(node["groups"], node["stride"])


class _LazyConv(nn.Conv2d):
    """An nn.Conv2d whose shape is set from its weights when they are loaded."""

    def __init__(self, groups: int, stride: int):
        super().__init__(groups, groups, 1, stride=stride, groups=groups)

    def set_weights(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        out_ch, in_per_group, kh, kw = weight.shape
        self.in_channels, self.out_channels = in_per_group * self.groups, out_ch
        self.kernel_size = (kh, kw)
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())


def load_blazeface(model: str = "short_range") -> BlazeFaceNet:
    """The shipped BlazeFace model (`short_range` or `full_range`), weights loaded, in eval mode.

        >>> net = load_blazeface("short_range")
        >>> regressors, scores = net(torch.zeros(1, 3, 128, 128))
        >>> regressors.shape, scores.shape
        (torch.Size([1, 896, 16]), torch.Size([1, 896]))
    """
    graph_path, weights_path = model_files(model)
    spec = json.loads(graph_path.read_text())
    net = BlazeFaceNet(spec)
    with np.load(weights_path, allow_pickle=False) as arrays:
        weights = {key: torch.from_numpy(arrays[key].astype(np.float32)) for key in arrays.files}
    expected = {f"{name}.{part}" for name in net.convs for part in ("weight", "bias")}
    if set(weights) != expected:
        raise ValueError(f"{weights_path}: weights do not match the graph {graph_path.name} "
                         f"(missing {sorted(expected - set(weights))[:3]}, extra {sorted(set(weights) - expected)[:3]})")
    for name, conv in net.convs.items():
        conv.set_weights(weights[f"{name}.weight"], weights[f"{name}.bias"])
    return net.eval().requires_grad_(False)
