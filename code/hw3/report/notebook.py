"""The notebook's own definitions: which listing cells it ran, whether a reader edited them, and
running the package's experiments with them.

In the executed notebook every listing is a code cell whose first line is the marker
`# from code/hw3/<module>.py` (`hw3.report.listing`); the functions and classes it defines live in
the notebook's namespace. Three questions are asked of them:

* `definitions(ns)`: which package definition each one stands for, (module, name) → the notebook's object;
* `edited(ns)`: the names whose code differs from the package's, which computed the stored results
  (compared as syntax trees, so comments and spacing do not count);
* `rebound(ns)`: a context in which the package's modules, and its dispatch tables, refer to the
  notebook's objects instead of their own. RETRAIN runs the package's experiments inside it, so
  that every graded function they reach (the data, the models, `train_and_record`, `fit`,
  `evaluate`, ...) is the notebook's cell.

In the rendered HTML and PDF nothing is defined in a notebook cell: the three are empty.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping

from hw3.report import listing

_MARKER = re.compile(r"^# from code/(hw3(?:/\w+)+)\.py\s*$")


def _listing_cells(ns: Mapping) -> dict[str, tuple[str, str]]:
    """name → (package module, its source as the notebook last ran it), from the cells run so far.

    Read from IPython's input history (`_ih`), in execution order, so a cell run again after an edit
    counts with its new text; classes and decorated functions are found like plain functions."""
    found: dict[str, tuple[str, str]] = {}
    for cell in ns.get("_ih", []) or []:
        match = _MARKER.match(cell.splitlines()[0]) if cell.strip() else None
        if not match:
            continue
        try:
            tree = ast.parse(cell)
        except SyntaxError:
            continue
        module = match.group(1).replace("/", ".")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # decorators included
                found[node.name] = (module, "\n".join(cell.splitlines()[first - 1:node.end_lineno]))
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = (module, ast.get_source_segment(cell, node))
    return found


def _from_notebook(obj) -> bool:
    """Defined by the notebook (not an object imported from the package)."""
    if isinstance(obj, dict):  # a dispatch table: built in the notebook if any value is
        return any(_from_notebook(v) for v in obj.values())
    return getattr(inspect.unwrap(obj) if callable(obj) else obj, "__module__", None) == "__main__"


def _main() -> Mapping:
    return vars(sys.modules["__main__"])


def definitions(ns: Mapping | None = None) -> dict[tuple[str, str], object]:
    """(package module, name) → the notebook's object, for every definition made by a listing cell
    and still bound to that name."""
    ns = _main() if ns is None else ns
    return {(module, name): ns[name] for name, (module, _) in _listing_cells(ns).items()
            if name in ns and _from_notebook(ns[name])}


def _tree(source: str) -> str:
    return ast.dump(ast.parse(textwrap.dedent(source)))


def _package_object(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def edited(ns: Mapping | None = None) -> list[str]:
    """Names whose notebook code differs from the package code that computed the stored results."""
    ns = _main() if ns is None else ns
    cells, changed = _listing_cells(ns), []
    for (module, name) in definitions(ns):
        original = _package_object(module, name)
        try:
            shown = listing.source_of(listing.Assignment(importlib.import_module(module), name)
                                      if isinstance(original, dict) else getattr(original, "__wrapped__", original))
            same = original is not None and _tree(cells[name][1]) == _tree(shown)
        except (OSError, TypeError, SyntaxError, ValueError):
            same = False
        if not same:
            changed.append(name)
    return sorted(changed)


@contextlib.contextmanager
def rebound(ns: Mapping | None = None) -> Iterator[dict[str, object]]:
    """Within: every reference of a loaded hw3 module (a global, or a value of a dict such as
    `models.MODELS`) to a package object the notebook redefined points at the notebook's object.
    Yields {name: notebook object}; everything is restored on exit."""
    replacements, names = {}, {}
    for (module, name), obj in definitions(ns).items():
        original = _package_object(module, name)
        if original is not None and not hasattr(original, "prefix"):  # a store experiment stays the store's
            replacements[id(original)] = (original, obj)
            names[name] = obj
    undo: list[tuple[dict, str, object]] = []
    for module_name, module in list(sys.modules.items()):
        if not (module_name == "hw3" or module_name.startswith("hw3.")) or module is None:
            continue
        for holder in [vars(module), *(v for v in vars(module).values() if isinstance(v, dict))]:
            for key, value in list(holder.items()):
                if id(value) in replacements and replacements[id(value)][0] is value:
                    undo.append((holder, key, value))
                    dict.__setitem__(holder, key, replacements[id(value)][1])
    try:
        yield names
    finally:
        for holder, key, value in reversed(undo):
            dict.__setitem__(holder, key, value)
