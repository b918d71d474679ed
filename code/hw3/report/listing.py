"""The package's source shown in the report, and defined again in its notebook: one source, two views.

`show(obj, ...)` prints the source of package functions or classes as one fenced Python block, with
the imports that make the block run on its own (the names it uses from its module). In the HTML
and PDF the block is the listing of the graded implementation; `tools/runnable_notebook.py` turns the same
block into a code cell of the ipynb, so running the notebook defines the function where its
question is asked, and the cells after it call that definition. The first line of the block,
`# from code/hw3/<module>.py`, is the marker that tool looks for.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import textwrap
import types

MARKER = "# from code/hw3/{module}.py"


def _names_used(tree: ast.AST) -> list[str]:
    """Every plain name the definition reads, in order of first use (annotations and decorators included)."""
    seen: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            seen.setdefault(node.id, None)
    return list(seen)


def _import_line(name: str, value, home: str) -> tuple[str, str]:
    """('from' module or '', the statement) that binds `name` to `value` in a fresh namespace."""
    if isinstance(value, types.ModuleType):
        module = value.__name__
        if module == name:
            return "", f"import {module}"
        parent, _, leaf = module.rpartition(".")
        return "", f"from {parent} import {leaf}" if leaf == name else f"import {module} as {name}"
    origin = getattr(value, "__module__", None)
    if origin and getattr(sys.modules.get(origin), name, None) is value and not origin.startswith("hw3"):
        return origin, name
    return home, name  # a package helper or constant: import it from the module that uses it


def imports_for(objects) -> list[str]:
    """The import statements a block of these definitions needs, sorted: stdlib/third-party, then hw3."""
    shown = {o.__name__ for o in objects}
    froms: dict[str, list[str]] = {}
    plain: list[str] = []
    for obj in objects:
        module = sys.modules[obj.__module__]
        for name in _names_used(ast.parse(textwrap.dedent(inspect.getsource(obj)))):
            if name in shown or not hasattr(module, name) or hasattr(builtins, name):
                continue
            origin, what = _import_line(name, getattr(module, name), obj.__module__)
            if not origin and what not in plain:
                plain.append(what)
            elif origin and what not in froms.setdefault(origin, []):
                froms[origin].append(what)
    lines = sorted(plain, key=lambda line: (not line.startswith("import"), line)) + [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(froms.items(), key=lambda kv: (kv[0].startswith("hw3"), kv[0]))]
    return lines


def listing(*objects) -> str:
    """The fenced block `show` prints: marker, imports, then each definition's source."""
    if not objects:
        raise ValueError("show() needs at least one function or class")
    objects = tuple(getattr(o, "__wrapped__", o) for o in objects)
    modules = {o.__module__ for o in objects}
    if len(modules) != 1 or not next(iter(modules)).startswith("hw3."):
        raise ValueError(f"show() takes definitions of one hw3 module at a time, got {sorted(modules)}")
    module = next(iter(modules)).removeprefix("hw3.").replace(".", "/")
    body = "\n\n\n".join(inspect.getsource(o).rstrip() for o in objects)
    head = "\n".join([MARKER.format(module=module), *imports_for(objects)])
    return f"```python\n{head}\n\n{body}\n```\n"


def show(*objects):
    """Print the listing (for an `output: asis` cell) and return the objects, to bind them by name."""
    print(listing(*objects))
    return objects[0] if len(objects) == 1 else objects
