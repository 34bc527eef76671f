"""The package's imports form no cycle and never go up a layer (LAYERS, below).

Each module of `emenet/` is parsed with `ast` (nothing is imported); an edge A -> B is a
module-level `import` / `from ... import` of A naming module B (a `from P import name`
names P.name when that is a module, else P). Module level includes `if TYPE_CHECKING:`
blocks: a cycle through type hints is still two modules that know each other. Imports
inside functions run later and are checked separately: one that closes a cycle must be
on the short list of deliberate ones.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "emenet"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


# Deferred imports that close a cycle on purpose: the one-class API's convenience methods
# (`Predictor.predict_image` / `.predict_video`) call the front ends built on the Predictor.
DELIBERATE_DEFERRED_CYCLES = {
    ("emenet.inference.predictor", "emenet.inference.image"),
    ("emenet.inference.predictor", "emenet.video.predict"),
}


def _module_level_imports(body: list[ast.stmt]):
    """Import statements that run when the module is imported (also inside top-level if/try)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _module_level_imports(block)


def _all_imports(body: list[ast.stmt]):
    """Every import statement of a module, wherever it sits."""
    for stmt in body:
        yield from (node for node in ast.walk(stmt) if isinstance(node, (ast.Import, ast.ImportFrom)))


def imported_modules(name: str, path: Path, modules: dict[str, Path], deferred: bool = False) -> set[str]:
    """The package modules that `name` imports at module level (`deferred`: anywhere)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    body = ast.parse(path.read_text(), str(path)).body
    for node in (_all_imports(body) if deferred else _module_level_imports(body)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: strip (level - 1) parts from the containing package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        out.update(t for t in targets if t in modules and t != name)
    return out


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(name, path, modules, deferred) for name, path in modules.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for child in graph[todo.pop()] - seen:
            seen.add(child)
            todo.append(child)
    return seen


def deferred_cycle_edges(graph: dict[str, set[str]], everywhere: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Deferred imports A -> B where B already reaches A through module-level imports."""
    return {(a, b) for a in graph for b in everywhere[a] - graph[a] if a in reachable(graph, b)}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_cycle_finder_on_a_hand_made_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d", "f"}, "f": {"e"}, "g": {"g"}}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["e", "f"]]


def test_relative_and_from_imports_resolve(tmp_path):
    modules = {"emenet.data": Path("x/__init__.py"), "emenet.data.clips": Path("x/clips.py"),
               "emenet.data.audio_windows": Path("x/audio_windows.py"), "emenet.tasks": Path("x/tasks.py")}
    src = tmp_path / "clips.py"
    src.write_text("from typing import TYPE_CHECKING\nfrom . import audio_windows\nfrom ..tasks import TASKS\n"
                   "if TYPE_CHECKING:\n    from emenet.data import clips\n    import emenet.data\n"
                   "def f():\n    from emenet.data.clips import LabeledVideo\n    import emenet.tasks\n")
    assert imported_modules("emenet.data.clips", src, modules) == {"emenet.data.audio_windows", "emenet.tasks",
                                                                   "emenet.data"}
    assert imported_modules("emenet.data.clips", src, modules, deferred=True) == \
        {"emenet.data.audio_windows", "emenet.tasks", "emenet.data"}


def test_deferred_cycle_edges_on_a_hand_made_graph():
    module_level = {"a": {"b"}, "b": set(), "c": set()}
    everywhere = {"a": {"b"}, "b": {"a", "c"}, "c": {"a"}}
    assert deferred_cycle_edges(module_level, everywhere) == {("b", "a")}


def test_graph_sees_the_package():
    graph = import_graph()
    assert {"emenet.models.emenet", "emenet.models.strict_load"} <= graph["emenet.models.checkpoint"]
    assert "emenet.face.detections" in graph["emenet.face.blazeface.detector"]


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles (module-level imports):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_deferred_imports_close_only_the_deliberate_cycles():
    edges = deferred_cycle_edges(import_graph(), import_graph(deferred=True))
    unexpected = sorted(edges - DELIBERATE_DEFERRED_CYCLES)
    assert not unexpected, "imports inside functions that close a cycle (move the shared piece down instead):\n" + \
        "\n".join(f"{a} -> {b}" for a, b in unexpected)
    assert edges == DELIBERATE_DEFERRED_CYCLES, "a deliberate cycle is gone; drop it from the list"


# The layers, lowest first. A module may import (at module level or inside a function) only
# modules of its own layer or a lower one. An entry is a package, a top-level module or a single
# module; a module belongs to its longest listed prefix.
LAYERS = (
    # core helpers every layer uses
    ("emenet.tasks", "emenet.errors", "emenet.io_utils", "emenet.extras", "emenet.failures", "emenet.processes",
     "emenet.reporting", "emenet.run_layout", "emenet.torch_files", "emenet.decoding", "emenet.uncertainty",
     "emenet.losses", "emenet.audio_timing"),
    # pure scoring functions and their figures: training's validation, the int8 gate and ensemble
    # validation all score with them, so they sit below everything that runs models
    ("emenet.evaluation.metrics", "emenet.evaluation.calibration", "emenet.evaluation.selective",
     "emenet.evaluation.selective_report", "emenet.viz.reliability", "emenet.viz.selective"),
    # reading media, no models: audio and video decoding
    ("emenet.audio", "emenet.data.video_info"),
    ("emenet.models",),
    # face alignment is image geometry at the model's input size: the synthetic face renderer
    # (data/) uses it as well as the face front end
    ("emenet.face.align",),
    ("emenet.data",),
    # the face front end and the fast backends (the int8 gate renders synthetic faces from data/)
    ("emenet.face", "emenet.fast", "emenet.profiling"),
    ("emenet.training",),
    ("emenet.distill",),
    ("emenet.evaluation",),
    ("emenet.conformal",),
    ("emenet.inference",),
    ("emenet.viz",),
    ("emenet.video",),
    ("emenet.challenge",),
    ("emenet.bench", "emenet.quickstart"),
    # entry points: the `emenet` command and its subcommands
    ("emenet", "emenet.cli"),
)

# Imports that go up a layer on purpose, with the reason.
UPWARD_EXCEPTIONS = {
    # soft labels read the annotation files that distill.annotate writes: the file format
    # (ANNOTATION_FORMAT, logit_columns) is defined once, next to its writer
    ("emenet.data.soft_labels", "emenet.distill.annotate"),
    # the one-class API: Predictor.predict_video calls the video front end (deferred import)
    ("emenet.inference.predictor", "emenet.video.predict"),
}


def layer_of(module: str, layers=LAYERS) -> int:
    """Index of the layer of the longest listed prefix of `module`."""
    best, best_len = None, -1
    for i, names in enumerate(layers):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = i, len(name)
    if best is None:
        raise KeyError(f"{module} is in no layer of LAYERS")
    return best


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> set[tuple[str, str]]:
    """Edges A -> B where B's layer is above A's."""
    return {(a, b) for a in graph for b in graph[a] if layer_of(b, layers) > layer_of(a, layers)}


def test_layer_of_takes_the_longest_prefix():
    layers = (("p.low", "p.mid.scores"), ("p.mid",), ("p",))
    assert [layer_of(m, layers) for m in ("p.low.x", "p.mid.scores", "p.mid.scores.y", "p.mid.z", "p", "p.top")] == \
        [0, 0, 0, 1, 2, 2]


def test_upward_imports_on_a_hand_made_graph():
    layers = (("p.a",), ("p.b",), ("p.c",))
    graph = {"p.a.x": {"p.a.y"}, "p.a.y": {"p.c.z"}, "p.b.w": {"p.a.x"}, "p.c.z": {"p.b.w", "p.a.x"}}
    assert upward_imports(graph, layers) == {("p.a.y", "p.c.z")}


def test_every_module_has_a_layer():
    for module in package_modules():
        layer_of(module)


def test_no_upward_imports():
    edges = upward_imports(import_graph(deferred=True))
    unexpected = sorted(edges - UPWARD_EXCEPTIONS)
    assert not unexpected, "imports of a higher layer (see LAYERS; move the shared piece down instead):\n" + \
        "\n".join(f"{a} -> {b}" for a, b in unexpected)
    assert edges == UPWARD_EXCEPTIONS, f"an exception is gone; drop it from the list: {UPWARD_EXCEPTIONS - edges}"
