"""What the package loads: no torch.load without weights_only=True, no pickle of untrusted files, no exec/eval.

The checks read the sources' syntax trees (so nested parentheses or line breaks in a call cannot hide
it), and each checker is first shown to flag a known-bad snippet, so a check that finds nothing in the
package is a real pass, not a check that could never fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "code" / "hw3"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def calls(source: str) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]


def unsafe_torch_loads(source: str) -> list[str]:
    """torch.load calls (also as a bare `load` imported from torch) without a literal weights_only=True."""
    load_imported = re.search(r"^from torch import .*\bload\b", source, flags=re.MULTILINE) is not None
    bad = []
    for call in calls(source):
        name = _dotted(call.func)
        if name == "torch.load" or (name == "load" and load_imported):
            safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in call.keywords)
            if not safe:
                bad.append(ast.unparse(call))
    return bad


def exec_eval_or_pickle_loads(source: str) -> list[str]:
    """Calls of exec/eval, and of pickle's (or dill's, cloudpickle's, joblib's) load/loads: the package reads
    pickles only through hw3.store.safeload, which builds plain data and nothing else."""
    bad = []
    for call in calls(source):
        name = _dotted(call.func)
        if name in ("exec", "eval", "builtins.exec", "builtins.eval") or \
                re.fullmatch(r"(c?pickle|dill|cloudpickle|_pickle|joblib)\.(load|loads|Unpickler)", name):
            bad.append(ast.unparse(call))
    return bad


def bare_asserts(source: str) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Assert)]


# --------------------------------------------------------------------------- the checkers can fail


@pytest.mark.parametrize("snippet", [
    "import torch\nstate = torch.load(path)",
    "import torch\nstate = torch.load(open(p, 'rb'), map_location='cpu')",
    "import torch\nstate = torch.load(\n    f(path),\n    weights_only=False)",
    "from torch import load\nstate = load(path)",
])
def test_the_torch_load_checker_flags_unsafe_calls(snippet):
    assert unsafe_torch_loads(snippet), f"the checker missed: {snippet!r}"


def test_the_torch_load_checker_accepts_weights_only():
    assert unsafe_torch_loads("import torch\nstate = torch.load(f(path), map_location='cpu', weights_only=True)") == []


@pytest.mark.parametrize("snippet", ["exec(code)", "x = eval('1 + 1')", "import pickle\npickle.loads(b)",
                                     "import pickle\nwith open(p, 'rb') as f:\n    pickle.load(f)", "import dill\ndill.load(f)",
                                     "import joblib\nout = joblib.load(path)"])
def test_the_exec_and_pickle_checker_flags_them(snippet):
    assert exec_eval_or_pickle_loads(snippet), f"the checker missed: {snippet!r}"


def test_the_assert_checker_flags_asserts():
    assert bare_asserts("def f(x):\n    assert x > 0\n    return x") == [2]


# --------------------------------------------------------------------------- the package


def test_package_sources_found():
    assert len(SOURCES) > 10, f"expected the package's modules in {PACKAGE}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_torch_load_always_uses_weights_only(path):
    assert unsafe_torch_loads(path.read_text()) == [], f"{path.name}: torch.load without weights_only=True"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_exec_eval_or_raw_pickle_loads(path):
    found = exec_eval_or_pickle_loads(path.read_text())
    # The package itself may not exec, eval or unpickle arbitrary files (the Quarto-free renderer in
    # tools/ evaluates the report's inline expressions in the report's own kernel).
    assert found == [], f"{path.name}: {found}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_bare_assert_for_validation(path):
    # `python -O` strips asserts, so argument checks must raise.
    assert bare_asserts(path.read_text()) == [], f"{path.name}: assert statements on lines {bare_asserts(path.read_text())}"
