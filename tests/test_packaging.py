"""The science package imports with its declared dependencies only: no renderer, no test or dev extras."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "code" / "hw3"
# Distribution name → the module it installs, where they differ.
MODULE_OF = {"pyyaml": "yaml", "dask[distributed]": "dask"}


def _declared_main_dependencies() -> set[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split("==")[0].split(">")[0].strip().lower() for d in deps}
    return {MODULE_OF.get(n, n) for n in names}


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (imports inside functions are optional paths, e.g. Dask)."""
    roots = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_module_level_import_is_stdlib_or_a_main_dependency():
    allowed = _declared_main_dependencies() | set(sys.stdlib_module_names) | {"hw3", "__future__"}
    for path in sorted(PACKAGE.glob("*.py")):
        extra = _top_level_imports(path) - allowed
        assert not extra, f"hw3/{path.name} imports {sorted(extra)} at module level, which `pip install hw3` does not provide"


def test_the_renderer_and_the_benchmarks_live_outside_the_package():
    assert not (PACKAGE / "render.py").exists() and not (PACKAGE / "bench.py").exists()
