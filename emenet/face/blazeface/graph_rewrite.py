"""Rewrite the exported BlazeFace graph so ONNX Runtime keeps it in its blocked (NCHWc) layout.

ONNX Runtime runs CPU convolutions fastest in a blocked layout (16 channels a block with
AVX-512). Two patterns of BlazeFace leave it, and each time the tensor is reordered out and
back (ReorderOutput, ReorderInput) around an operator that runs unblocked; in the full-range
model these took about a fifth of the network's time:

- A BlazeBlock that widens adds its input, zero-padded in channels, to its 1x1 convolution's
  output: `Add(Pad(skip), Conv(d))`, and the layout has no Pad over channels. The same sum is,
  channel by channel, `Concat(Add(skip, Conv(d, W[:C], b[:C])), Conv(d, W[C:], b[C:]))` (C the
  skip's channels), with the same multiply-adds (`split_channel_pads`).
- A bottleneck squeezes to fewer channels than a block (32 -> 8 at 96x96): widened to a whole
  block by channels with zero weights, which stay exactly zero (`widen_narrow_bottlenecks`).

Each output channel is the same dot product as before, so the outputs equal the plain graph's
up to the order of the sums (tests/test_blazeface_graph_rewrite.py on hand-built graphs,
tests/test_blazeface.py against torch).
"""
from __future__ import annotations

import numpy as np

LAYOUT_BLOCK = 16  # channels per block of ONNX Runtime's NCHWc layout with AVX-512 (8 with AVX2)


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
    return _without_unused_initializers(model)


def _without_unused_initializers(model) -> bytes:
    """The checked, serialised model without the initializers no node reads any more."""
    import onnx
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
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


def widen_narrow_bottlenecks(model_bytes: bytes, block: int = LAYOUT_BLOCK) -> bytes:
    """The serialised ONNX `model_bytes` with every narrow bottleneck `Conv -> Relu -> depthwise
    Conv -> Conv` whose middle has fewer than `block` channels widened to `block` by zero channels.

    ONNX Runtime's blocked layout works in blocks of 16 channels (AVX-512; 8 on AVX2): the
    full-range model's first blocks squeeze 32 channels to 8 at 96x96, and each such tensor left
    the layout and came back. The added channels have zero weights and biases, so they stay
    exactly zero through the Relu and the depthwise convolution and add exact zeros to the last
    convolution: the outputs are the plain graph's."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {out.name for out in graph.output}

    def only_consumer(node, op_type: str):
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != op_type or node.output[0] in graph_outputs:
            return None
        return users[0]

    def weight(node) -> np.ndarray | None:
        if len(node.input) < 2 or node.input[1] not in inits:
            return None
        return numpy_helper.to_array(inits[node.input[1]])

    def group(node) -> int:
        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)

    def replace(node, index: int, array: np.ndarray) -> None:
        name = f"{node.input[index]}_widened"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        node.input[index] = name

    widened: set[str] = set()  # the tensors that gained channels
    for squeeze in list(graph.node):
        w_squeeze = weight(squeeze) if squeeze.op_type == "Conv" else None
        if w_squeeze is None or group(squeeze) != 1 or len(squeeze.input) != 3 or squeeze.input[2] not in inits:
            continue
        narrow = w_squeeze.shape[0]
        if narrow % block == 0:
            continue
        relu = only_consumer(squeeze, "Relu")
        depthwise = relu and only_consumer(relu, "Conv")
        expand = depthwise and only_consumer(depthwise, "Conv")
        if not expand:
            continue
        w_depthwise, w_expand = weight(depthwise), weight(expand)
        if w_depthwise is None or w_expand is None or group(depthwise) != narrow \
                or w_depthwise.shape[:2] != (narrow, 1) \
                or group(expand) != 1 or w_expand.shape[1] != narrow or expand.input[0] != depthwise.output[0]:
            continue
        has_bias = len(depthwise.input) > 2 and bool(depthwise.input[2])
        if has_bias and depthwise.input[2] not in inits:
            continue  # a bias computed at run time: not a pattern this knows
        wide = -(-narrow // block) * block
        extra = wide - narrow
        replace(squeeze, 1, np.concatenate([w_squeeze, np.zeros((extra, *w_squeeze.shape[1:]), w_squeeze.dtype)]))
        bias = numpy_helper.to_array(inits[squeeze.input[2]])
        replace(squeeze, 2, np.concatenate([bias, np.zeros(extra, bias.dtype)]))
        zeros = np.zeros((extra, *w_depthwise.shape[1:]), w_depthwise.dtype)
        replace(depthwise, 1, np.concatenate([w_depthwise, zeros]))
        if has_bias:
            bias = numpy_helper.to_array(inits[depthwise.input[2]])
            replace(depthwise, 2, np.concatenate([bias, np.zeros(extra, bias.dtype)]))
        for attribute in depthwise.attribute:
            if attribute.name == "group":
                attribute.i = wide
        zeros = np.zeros((w_expand.shape[0], extra, *w_expand.shape[2:]), w_expand.dtype)
        replace(expand, 1, np.concatenate([w_expand, zeros], axis=1))
        widened |= {squeeze.output[0], relu.output[0], depthwise.output[0]}
    if not widened:
        return model_bytes
    # The exporter's recorded shapes of the widened tensors no longer hold: let the runtime infer them.
    kept_info = [info for info in graph.value_info if info.name not in widened]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return _without_unused_initializers(model)
