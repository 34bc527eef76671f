"""The exported detector's graph rewrite (emenet.face.blazeface.graph_rewrite) and the network's
constant-scale upsampling: same outputs as the plain forms, checked on small hand-built graphs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emenet.face.blazeface.network import load_blazeface


def _block_graph(pad_value: float = 0.0, spatial: bool = False, relu: bool = True) -> bytes:
    """A widening BlazeBlock by hand: relu(Conv1x1(DWConv(x)) + Pad(x, 8 zero channels))."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    channels, out = 8, 16
    inits = [numpy_helper.from_array(a.astype(np.float32), name) for a, name in (
        (rng.normal(size=(channels, 1, 3, 3)), "dw_w"), (rng.normal(size=channels), "dw_b"),
        (rng.normal(size=(out, channels, 1, 1)), "pw_w"), (rng.normal(size=out), "pw_b"))]
    pads = [0, 0, 0, 0, 0, out - channels, 0, 0] if not spatial else [0, 0, 0, 1, 0, out - channels, 0, 1]
    inits += [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
              numpy_helper.from_array(np.array(pad_value, np.float32), "value")]
    size = 6 if spatial else 5
    nodes = [helper.make_node("Conv", ["x", "dw_w", "dw_b"], ["d"], group=channels, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "pw_w", "pw_b"], ["c"]),
             helper.make_node("Pad", ["x", "pads", "value"], ["p"], mode="constant")]
    if spatial:  # pad x by one column on the right, then crop c's match: keep shapes equal by padding c too
        nodes.append(helper.make_node("Pad", ["c", "pads_c"], ["c2"], mode="constant"))
        inits.append(numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 0, 1], np.int64), "pads_c"))
    nodes.append(helper.make_node("Add", ["p", "c2" if spatial else "c"], ["s"]))
    nodes.append(helper.make_node("Relu" if relu else "Identity", ["s"], ["y"]))
    graph = helper.make_graph(nodes, "block",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", out, 5, size])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    from emenet.fast.onnx_backend import make_session
    return make_session(model).run(None, {"x": x})[0]


def _ops(model: bytes) -> list[str]:
    import onnx
    return [node.op_type for node in onnx.load_from_string(model).graph.node]


@pytest.mark.parametrize("relu", [True, False])
def test_channel_pad_residual_is_split_with_the_same_outputs(require_extra, relu):
    require_extra("onnxruntime", "onnx")
    from emenet.face.blazeface.graph_rewrite import split_channel_pads
    plain = _block_graph(relu=relu)
    rewritten = split_channel_pads(plain)
    assert "Pad" not in _ops(rewritten) and _ops(rewritten).count("Concat") == 1
    assert _ops(rewritten).count("Conv") == 3  # the widening conv split in two, no extra work
    if relu:
        assert _ops(rewritten).count("Relu") == 2  # moved into the two branches
    x = np.random.default_rng(1).normal(size=(3, 8, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, x), _run(plain, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [{"pad_value": 1.0}, {"spatial": True}])
def test_other_pads_are_left_alone(require_extra, case):
    require_extra("onnxruntime", "onnx")
    from emenet.face.blazeface.graph_rewrite import split_channel_pads
    plain = _block_graph(**case)
    assert split_channel_pads(plain) == plain


def _bottleneck_graph(narrow: int, depthwise_bias: bool) -> bytes:
    """Conv 1x1 (16 -> narrow) -> Relu -> depthwise 3x3 -> Conv 1x1 (narrow -> 16), by hand."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(2)
    arrays = {"w1": rng.normal(size=(narrow, 16, 1, 1)), "b1": rng.normal(size=narrow),
              "wd": rng.normal(size=(narrow, 1, 3, 3)), "bd": rng.normal(size=narrow),
              "w2": rng.normal(size=(16, narrow, 1, 1)), "b2": rng.normal(size=16)}
    inits = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in arrays.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Conv", ["r", "wd"] + (["bd"] if depthwise_bias else []), ["d"], group=narrow,
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "w2", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "bottleneck",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16, 6, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


@pytest.mark.parametrize("depthwise_bias", [True, False])
def test_narrow_bottleneck_is_widened_with_the_same_outputs(require_extra, depthwise_bias):
    require_extra("onnxruntime", "onnx")
    import onnx
    from onnx import numpy_helper
    from emenet.face.blazeface.graph_rewrite import widen_narrow_bottlenecks
    plain = _bottleneck_graph(8, depthwise_bias)
    widened = widen_narrow_bottlenecks(plain)
    shapes = {i.name: tuple(i.dims) for i in onnx.load_from_string(widened).graph.initializer}
    assert shapes["w1_widened"] == (16, 16, 1, 1) and shapes["wd_widened"] == (16, 1, 3, 3)
    assert shapes["w2_widened"] == (16, 16, 1, 1)
    x = np.random.default_rng(3).normal(size=(2, 16, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(widened, x), _run(plain, x), rtol=1e-5, atol=1e-5)
    # The added channels carry zeros in, so the last convolution's added inputs are multiplied by exact zeros.
    initializers = onnx.load_from_string(widened).graph.initializer
    w2 = numpy_helper.to_array(next(i for i in initializers if i.name == "w2_widened"))
    assert not w2[:, 8:].any()
    assert widen_narrow_bottlenecks(_bottleneck_graph(16, True)) == _bottleneck_graph(16, True)  # already whole blocks


def test_upsampling_by_scale_is_the_upsampling_by_size():
    net = load_blazeface("full_range")
    node = next(n for n in net._nodes if n["op"] == "resize_bilinear")
    x = torch.randn(2, 4, node["size"][0] // 2, node["size"][1] // 2)
    expected = F.interpolate(x, size=tuple(node["size"]), mode="bilinear", align_corners=node["align_corners"])
    assert torch.equal(net._run(node, {node["in"]: x}), expected)
