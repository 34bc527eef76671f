"""All members' backbone graphs as one ONNX graph: one input, one output per member.

ONNX Runtime then runs an ensemble in one session call per micro-batch instead of one per
member and micro-batch. Each member's names get a prefix (`m0/`, `m1/`, ...) so nothing
collides; their input is the shared `frames`, so the frames are handed over once.

    >>> merged = merge_member_graphs([graph_a, graph_b])  # doctest: +SKIP
    >>> [o.name for o in onnx.load_from_string(merged).graph.output]  # doctest: +SKIP
    ['features_0', 'features_1']
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emenet.extras import require
from emenet.fast.onnx_backend import INPUT_NAME, OUTPUT_NAME


def member_output(member: int) -> str:
    return f"{OUTPUT_NAME}_{member}"


def merge_member_graphs(graphs: Sequence[bytes]) -> bytes:
    """One serialised ONNX model running every graph of `graphs` (each INPUT_NAME -> OUTPUT_NAME)
    on the same INPUT_NAME; output `member_output(i)` is graph i's OUTPUT_NAME."""
    onnx = require("onnx")
    from onnx import compose, helper
    models = [onnx.load_from_string(g) for g in graphs]
    if not models:
        raise ValueError("no graphs to merge")
    nodes, initializers, value_info, outputs = [], [], [], []
    for i, model in enumerate(models):
        prefixed = compose.add_prefix(model, f"m{i}/")
        g = prefixed.graph
        own_input, own_output = f"m{i}/{INPUT_NAME}", f"m{i}/{OUTPUT_NAME}"
        for node in g.node:
            for k, name in enumerate(node.input):
                if name == own_input:
                    node.input[k] = INPUT_NAME
        nodes += g.node
        initializers += g.initializer
        value_info += g.value_info
        out = next(o for o in g.output if o.name == own_output)
        renamed = onnx.ValueInfoProto()
        renamed.CopyFrom(out)
        renamed.name = member_output(i)
        nodes.append(helper.make_node("Identity", [own_output], [renamed.name], name=f"m{i}/output"))
        outputs.append(renamed)
    first = models[0]
    graph = helper.make_graph(nodes, "emenet_ensemble", [first.graph.input[0]], outputs, initializers,
                              value_info=value_info)
    merged = helper.make_model(graph, opset_imports=first.opset_import, ir_version=first.ir_version)
    for model in models:  # local functions, if an exporter left any, are shared definitions
        merged.functions.extend(f for f in model.functions if f not in merged.functions)
    return merged.SerializeToString()


def run_members(session, frames: torch.Tensor, members: int) -> list[torch.Tensor]:
    """(N, 3, 112, 112) float frames -> `members` (N, 512) feature tensors, through a merged session."""
    x = np.ascontiguousarray(frames.detach().cpu().float().numpy())
    outs = session.run([member_output(i) for i in range(members)], {INPUT_NAME: x})
    return [torch.from_numpy(o) for o in outs]
