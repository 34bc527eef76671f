"""Rewrite the exported BlazeFace graph so ONNX Runtime keeps it in its blocked (NCHWc) layout.

A BlazeBlock that widens adds its input, zero-padded in channels, to its 1x1 convolution's
output: `Add(Pad(skip), Conv(d))`. ONNX Runtime's NCHWc layout (the fast CPU convolutions)
has no Pad over channels, so each such block leaves the blocked layout and comes back
(ReorderOutput, Pad, ReorderInput, an unfused Add): in the full-range model these reorders
and pads took about a fifth of the network's time. The same sum is, channel by channel,

    Concat(Add(skip, Conv(d, W[:C], b[:C])), Conv(d, W[C:], b[C:]))    (C = skip's channels)

with the same multiply-adds: the first C output channels get the skip, the padded ones get
nothing added. Each output channel is the same dot product as before, so the outputs equal
the plain graph's up to rounding (tests/test_blazeface_onnx.py compares them with torch).
"""
from __future__ import annotations

import numpy as np


def split_channel_pads(model_bytes: bytes) -> bytes:
    """The serialised ONNX `model_bytes` with every `Add(Pad(skip), Conv(d))` that pads only
    channels, with zeros, rewritten as Concat(Add(skip, Conv_a(d)), Conv_b(d)) (module docstring)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    uses = {name: len(nodes) for name, nodes in consumers.items()}
    graph_outputs = {out.name for out in graph.output}

    replaced: dict[int, list] = {}  # id(Add node) -> its replacement nodes
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "Add":
            continue
        pad, conv = (producer.get(name) for name in node.input)
        if pad is None or conv is None or pad.op_type != "Pad":
            pad, conv = conv, pad
        extra = _channel_pad(pad, inits) if pad is not None and pad.op_type == "Pad" else None
        if extra is None or conv is None or conv.op_type != "Conv" or len(conv.input) != 3:
            continue
        if uses[pad.output[0]] != 1 or uses[conv.output[0]] != 1 or conv.input[1] not in inits \
                or {pad.output[0], conv.output[0]} & graph_outputs:
            continue
        weight = numpy_helper.to_array(inits[conv.input[1]])
        bias = numpy_helper.to_array(inits[conv.input[2]])
        keep = weight.shape[0] - extra  # the skip's channels
        base = conv.output[0]
        new_inits = [numpy_helper.from_array(np.ascontiguousarray(a), f"{base}_{tag}")
                     for a, tag in ((weight[:keep], "w_skip"), (bias[:keep], "b_skip"),
                                    (weight[keep:], "w_pad"), (bias[keep:], "b_pad"))]
        graph.initializer.extend(new_inits)
        attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        nodes = [
            helper.make_node("Conv", [conv.input[0], f"{base}_w_skip", f"{base}_b_skip"], [f"{base}_skip"],
                             name=f"{base}_skip_conv", **attributes),
            helper.make_node("Add", [f"{base}_skip", pad.input[0]], [f"{base}_with_skip"], name=f"{base}_skip_add"),
            helper.make_node("Conv", [conv.input[0], f"{base}_w_pad", f"{base}_b_pad"], [f"{base}_pad"],
                             name=f"{base}_pad_conv", **attributes),
        ]
        parts, output = [f"{base}_with_skip", f"{base}_pad"], node.output[0]
        relu = consumers.get(output, [])
        if len(relu) == 1 and relu[0].op_type == "Relu":
            # Relu(Concat(a, b)) = Concat(Relu(a), Relu(b)): each Relu then fuses into its convolution.
            nodes += [helper.make_node("Relu", [part], [f"{part}_relu"], name=f"{part}_relu") for part in parts]
            parts, output = [f"{part}_relu" for part in parts], relu[0].output[0]
            dropped.add(id(relu[0]))
        replaced[id(node)] = nodes + [helper.make_node("Concat", parts, [output], axis=1, name=f"{base}_concat")]
        dropped |= {id(pad), id(conv)}
    if not replaced:
        return model_bytes
    nodes = []
    for node in graph.node:
        if id(node) in dropped:
            continue
        nodes.extend(replaced.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept_inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _channel_pad(pad, inits: dict) -> int | None:
    """How many zero channels a constant-mode NCHW Pad node appends at the end, or None when it
    pads anything else (other axes, the front, a non-zero value, not a constant)."""
    from onnx import helper, numpy_helper
    mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == "mode"), b"constant")
    if mode not in (b"constant", "constant") or len(pad.input) < 2 or pad.input[1] not in inits:
        return None
    if len(pad.input) > 2 and pad.input[2]:
        if pad.input[2] not in inits or np.any(numpy_helper.to_array(inits[pad.input[2]]) != 0):
            return None
    if len(pad.input) > 3 and pad.input[3]:
        return None  # padding named axes only: not the layout this expects
    pads = numpy_helper.to_array(inits[pad.input[1]])
    if pads.shape != (8,) or np.any(pads[[0, 1, 2, 3, 4, 6, 7]] != 0) or pads[5] <= 0:
        return None
    return int(pads[5])
