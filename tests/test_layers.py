"""The package's folders are its layers, and a module never imports from a layer above its own.

From the bottom: `environment` (folders and flags); `store` (cached experiments, fingerprints);
`nn` and `backprop` (the ML core: data, models, training; Part 1's numpy network); `experiments`
(one module per part, the run skeleton, the registry); `compute` (what `make results` runs and
how); `report` (what report.qmd calls); `cli` (the command line). Every import counts, including
those inside functions, so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "code" / "hw3"

LAYERS = ["environment", "store", "nn backprop", "experiments", "compute", "report", "cli __main__"]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names.split()}


def layer_of(module: str) -> str:
    """'hw3.nn.data' → 'nn'; 'hw3' itself (the package's __init__) sits below everything."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) for every package module `path` imports, at any depth of the file."""
    me = module_name(path, package_dir)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "hw3"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "hw3":
                continue
            # `from hw3.nn import data` imports hw3.nn.data; `from hw3.nn.data import X` imports hw3.nn.data
            found += [(node.lineno, f"{module}.{a.name}" if module.count(".") == 1 and module != "hw3" else module)
                      for a in node.names]
            if module == "hw3":
                found[-len(node.names):] = [(node.lineno, f"hw3.{a.name}") for a in node.names]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))

# The one exception: the package's __init__ installs the store's source snapshot before any other
# module is imported (it imports nothing of the package itself; see hw3.store.sources).
ALLOWED = {("hw3", "hw3.store.sources")}


def test_every_module_is_in_a_known_layer():
    unknown = {module_name(p) for p in SOURCES if layer_of(module_name(p)) not in RANK and module_name(p) != "hw3"}
    assert not unknown, f"add these to a layer in LAYERS (and to the table in docs/layout.md): {sorted(unknown)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path):
    me = layer_of(module_name(path))
    upward = [f"line {line}: {module} ({layer_of(module)} is above {me or 'hw3'})"
              for line, module in imported_modules(path)
              if layer_of(module) in RANK and RANK[layer_of(module)] > RANK.get(me, -1)
              and (module_name(path), module) not in ALLOWED]
    assert not upward, f"{path.relative_to(PACKAGE.parent)} imports upward:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself: a function-level import of the report from the ML core is caught."""
    fake = PACKAGE / "nn" / "data.py"
    text = fake.read_text() + "\n\ndef _upward():\n    from hw3.report import plots\n    return plots\n"
    copy = tmp_path / "hw3" / "nn" / "data.py"
    copy.parent.mkdir(parents=True)
    copy.write_text(text)
    modules = [m for _, m in imported_modules(copy, tmp_path / "hw3")]
    assert "hw3.report.plots" in modules
    assert RANK[layer_of("hw3.report.plots")] > RANK[layer_of("hw3.nn.data")]
