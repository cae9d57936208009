"""The engine's layout rules (DESIGN.md, Layout): packages by concept, no import cycles, no import
from a lower layer back up into a higher one, no gradio under engine/, components/ through faces.

The import graph is read from the source with `ast` (every import, also those inside functions:
a lazy import still couples two modules), so this test is also how the closing note checked it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"

# Lower number = lower layer. A module may import only from its own layer or below.
LAYERS = {
    "errors": 0, "offline": 0, "numbers": 0, "validation": 0, "faces": 0,
    "hardware": 1, "models": 1, "architectures": 1, "mlm_head": 1,
    "run_folder": 1,
    "data": 2,
    "masking": 3, "objectives": 3, "training": 3, "costs": 3,  # masking previews chunks of a prepared corpus
    "compare": 4, "runs": 4,
    "cli": 5, "__main__": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ENGINE.rglob("*.py")}


def _face_target(package: str, name: str, modules: dict[str, Path]) -> str:
    """`from engine.pkg import name`: the submodule `name`, or the submodule a lazy face sends it to."""
    if f"{package}.{name}" in modules:
        return f"{package}.{name}"
    face = getattr(importlib.import_module(package), "_FACE", {})
    return f"{package}.{face[name]}" if name in face else package


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (annotations only: no runtime coupling)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    yield from ast.walk(tree)


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "engine"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "engine":
            found |= {_face_target(node.module, a.name, modules) for a in node.names}
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    modules = engine_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A depth-first search that returns one cycle as a list of module names, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_the_engine_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_reaches_up_a_layer():
    upward = [(src, dst) for src, dsts in import_graph().items() for dst in dsts
              if layer_of(src) is not None and layer_of(dst) is not None and layer_of(dst) > layer_of(src)]
    assert upward == []


def test_every_engine_module_has_a_layer():
    assert [m for m in engine_modules() if m != "engine" and layer_of(m) is None] == []


def test_packages_by_concept_keep_the_top_level_small():
    assert len(list(ENGINE.glob("*.py"))) <= 15
    for package in ("data", "training", "runs", "compare", "costs", "cli"):
        assert (ENGINE / package / "__init__.py").exists(), package


def test_engine_never_imports_gradio():
    offenders = [str(p.relative_to(ROOT)) for p in ENGINE.rglob("*.py")
                 if any(isinstance(n, (ast.Import, ast.ImportFrom))
                        and any((getattr(n, "module", None) or a.name).split(".")[0] == "gradio" for a in n.names)
                        for n in ast.walk(ast.parse(p.read_text())))]
    assert offenders == []


LEAVES = {"errors", "offline", "numbers", "validation", "hardware", "models", "architectures", "mlm_head",
          "run_folder", "objectives", "masking"}


def ui_imports() -> list[tuple[str, str, list[str]]]:
    """(file, module, names) of every engine import in components/ and app.py."""
    found = []
    for path in [*sorted((ROOT / "components").glob("*.py")), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "engine":
                found.append((path.name, node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                found += [(path.name, a.name, []) for a in node.names if a.name.split(".")[0] == "engine"]
    return found


def test_the_ui_imports_package_faces_and_leaf_modules_only():
    """components/ and app.py see `engine.<package>` faces (names in its __all__) and the flat leaf
    modules (RunFolder among them), never a package's internals such as engine.runs.jobs' path."""
    wrong = []
    for file, module, names in ui_imports():
        parts = module.split(".")
        if module == "engine":
            wrong += [f"{file}: engine.{n}" for n in names if n not in LEAVES]
            continue
        if len(parts) == 2 and parts[1] in LEAVES:
            continue
        if len(parts) in (2, 3) and (ENGINE.joinpath(*parts[1:]) / "__init__.py").exists():
            public = set(importlib.import_module(module).__all__)
            wrong += [f"{file}: {module}.{n}" for n in names if n not in public]
            continue
        wrong.append(f"{file}: {module}")
    assert wrong == []


def test_face_names_never_shadow_a_submodule():
    for package in ("data", "training", "training.classify", "runs", "compare", "costs"):
        face = importlib.import_module(f"engine.{package}")._FACE
        folder = ENGINE.joinpath(*package.split("."))
        assert [n for n in face if (folder / f"{n}.py").exists() or (folder / n).is_dir()] == []
        for name, sub in face.items():
            assert hasattr(importlib.import_module(f"engine.{package}.{sub}"), name), (package, name)
