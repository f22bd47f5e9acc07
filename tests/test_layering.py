"""The import layering of DESIGN.md: a package imports only packages of a lower layer (or base modules)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vixml"

# Lower number = lower layer. Base modules (vixml/*.py: errors, atomic, optional, devices) are below every package.
LAYERS = {
    "config": 0,
    "data": 1,
    "metrics": 2,
    "search": 2,
    "retrieval": 3,
    "models": 3,
    "reports": 3,
    "vision": 3,
    "planning": 4,  # memory estimates: reads the sizes of data, models, search and retrieval
    "training": 5,
    "inference": 6,
    "serve": 7,
    "cli": 8,
    "testing": 8,  # builders and oracles for tests and benchmarks: may use every layer, used by none
    "__main__": 9,  # python -m vixml: the command line, above everything
}
BASE = 0


def _layer_of(module: str) -> int | None:
    """Layer of a ``vixml.x.y`` module name, None if it is not ours."""
    parts = module.split(".")
    if parts[0] != "vixml":
        return None
    if len(parts) == 1:
        return BASE
    return LAYERS.get(parts[1], BASE)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - {"resources"} <= set(LAYERS), f"add {packages - set(LAYERS)} to LAYERS and DESIGN.md"


def test_lower_layers_never_import_higher_ones():
    violations = []
    for path in SRC.rglob("*.py"):
        own = _layer_of(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        own_pkg = path.relative_to(SRC).parts[0] if len(path.relative_to(SRC).parts) > 1 else None
        for line, name in _imports(path):
            target = _layer_of(name)
            if target is None:
                continue
            target_pkg = name.split(".")[1] if name.count(".") >= 1 else None
            if target_pkg == own_pkg:
                continue
            if target >= own and not (own == BASE and target == BASE):
                violations.append(f"{path.relative_to(SRC.parent)}:{line} imports {name}")
    assert not violations, "layering broken:\n" + "\n".join(violations)


# Pairs that the layer order allows but the design forbids: using a trained run never needs the trainer.
FORBIDDEN = {"inference": {"training"}, "serve": {"training"}}


def test_using_a_run_never_imports_training():
    violations = []
    for package, banned in FORBIDDEN.items():
        for path in (SRC / package).rglob("*.py") if (SRC / package).is_dir() else ():
            for line, name in _imports(path):
                parts = name.split(".")
                if parts[0] == "vixml" and len(parts) > 1 and parts[1] in banned:
                    violations.append(f"{path.relative_to(SRC.parent)}:{line} imports {name}")
    assert not violations, "\n".join(violations)


LIGHT = {
    "vixml vixml.devices vixml.data vixml.metrics": ["torch", "transformers", "numba", "faiss", "hnswlib", "fastapi"],
    "vixml.search vixml.cli.main": ["faiss", "hnswlib", "fastapi", "transformers"],
}


@pytest.mark.parametrize("modules", sorted(LIGHT))
def test_imports_stay_light(modules):
    """Optional and heavy dependencies load only when a feature needs them."""
    code = f"import sys, importlib\nfor m in {modules.split()!r}: importlib.import_module(m)\n"
    code += f"print([h for h in {LIGHT[modules]!r} if h in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"importing {modules} loads {out.stdout.strip()}"
