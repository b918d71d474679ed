"""The package's source shown in the report, and defined again in its notebook: one source, two views.

`show(obj, ...)` prints the source of package functions or classes as one fenced Python block, with
the imports that make the block run on its own (the names it uses from its module). In the HTML
and PDF the block is the listing of the graded implementation; `tools/runnable_notebook.py` turns the same
block into a code cell of the ipynb, so running the notebook defines the function where its
question is asked, and the cells after it call that definition. The first line of the block,
`# from code/hw3/<module>.py`, is the marker that tool looks for.

The notebook's definitions call each other, not the package's: a block imports from the package
only the names that no earlier block defined, and the package calls its graded helpers by bare
names (`fit(...)`, not `train.fit(...)`). So in the notebook, the `train_and_record` of its cell
calls the `fit` of its cell, and editing a cell changes what runs. The store's `@experiment(...)`
decorator is left out of a listing: in the notebook the function is a plain function.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import textwrap
import types

MARKER = "# from code/hw3/{module}.py"
_SHOWN_KEY = "_hw3_listed"


def _shown() -> dict[str, object]:
    """What earlier blocks of this document defined, by name: a later block does not import these
    again, so it cannot shadow the notebook's own definition with the package's. Kept in the running
    document's namespace (`__main__`), so that each execution of the document (Quarto executes it
    once per format, resetting the namespace in between) starts afresh."""
    return vars(sys.modules["__main__"]).setdefault(_SHOWN_KEY, {})
_STORE_DECORATORS = {"experiment"}


class Assignment:
    """A module-level assignment shown as a listing, e.g. a dispatch table: `Assignment(fashion, "OPTIMIZER_BUILDERS")`."""

    def __init__(self, module: types.ModuleType, name: str):
        self.module, self.__module__, self.__name__ = module, module.__name__, name

    @property
    def value(self):
        return getattr(self.module, self.__name__)


def source_of(obj) -> str:
    """The listing's text of one definition: its source, without the store's decorator."""
    if isinstance(obj, Assignment):
        tree = ast.parse(inspect.getsource(obj.module))
        for node in tree.body:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
            if any(isinstance(t, ast.Name) and t.id == obj.__name__ for t in targets):
                return ast.get_source_segment(inspect.getsource(obj.module), node)
        raise ValueError(f"{obj.module.__name__} has no module-level assignment to {obj.__name__}")
    text = textwrap.dedent(inspect.getsource(obj))
    node = ast.parse(text).body[0]
    kept = [d for d in getattr(node, "decorator_list", []) if _decorator_name(d) not in _STORE_DECORATORS]
    if len(kept) == len(getattr(node, "decorator_list", [])):
        return text.rstrip()
    lines = text.splitlines()
    start = node.lineno - 1  # the `def` line (ast puts lineno after the decorators)
    head = [ast.get_source_segment(text, d) for d in kept]
    return "\n".join([*(f"@{h}" for h in head), *lines[start:]]).rstrip()


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")


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


def imports_for(objects, defined: dict[str, object] | None = None) -> list[str]:
    """The import statements a block of these definitions needs, sorted: stdlib/third-party, then hw3.

    A name that an earlier block defined as the very object the module uses (`defined`) is not
    imported: the notebook's own definition serves it."""
    shown = {o.__name__ for o in objects}
    defined = _shown() if defined is None else defined
    froms: dict[str, list[str]] = {}
    plain: list[str] = []
    for obj in objects:
        module = sys.modules[obj.__module__]
        for name in _names_used(ast.parse(source_of(obj))):
            if name in shown or not hasattr(module, name) or hasattr(builtins, name):
                continue
            if name in defined and defined[name] is getattr(module, name):
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
    body = "\n\n\n".join(source_of(o) for o in objects)
    head = "\n".join([MARKER.format(module=module), *imports_for(objects)])
    return f"```python\n{head}\n\n{body}\n```\n"


def show(*objects):
    """Print the listing (for an `output: asis` cell) and return the objects, to bind them by name.

    Later listings of this process then leave these names to the notebook's definitions."""
    print(listing(*objects))
    values = [o.value if isinstance(o, Assignment) else o for o in objects]  # as the package's modules refer to them
    _shown().update({getattr(o, "__wrapped__", o).__name__: v for o, v in zip(objects, values)})
    return values[0] if len(values) == 1 else tuple(values)
