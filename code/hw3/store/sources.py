"""The source each module of a watched package was compiled from, kept as it was read.

`hw3/__init__.py` calls `watch("hw3")` before any other module of the package is imported. From
then on every module of `hw3` is compiled from the bytes this loader read (not from a `.pyc`, which
could be older or newer than the file), and those bytes are kept. The fingerprint is taken from the
files on disk, so the store compares the two around a run (`changed_on_disk`): a result is written
only when the code that computed it is the code fingerprinted. A file edited after a worker imported
it (a branch switch during `make results`), before or during its run, is refused.

A module imported before its package called `watch` (the package's `__init__` itself, and this
module), or of a package that never calls it, is snapshotted from disk the first time it is asked
for: for those the check covers edits from that moment on only.
"""

from __future__ import annotations

import ast
import builtins
import importlib.abc
import importlib.machinery
import sys
import threading

FINGERPRINT_EXEMPT = True  # how sources are read, not what they compute

_SOURCES: dict[str, bytes] = {}  # module name → the bytes it was compiled from
_WATCHED: set[str] = set()
_LOCK = threading.Lock()


# (module, line) of every function of a watched module that has started running in this process, and
# (module, 0) for a module's top-level code: what `hw3.store.runtime.recording` reads around a run.
RAN: set[tuple[str, int]] = set()
# The name through which instrumented code records itself: a builtin, so that it is found however the code
# is run (`python -m hw3` runs hw3/__main__.py's code in a fresh namespace); it ends in __: never mangled.
RAN_NAME = "__hw3_ran__"
setattr(builtins, RAN_NAME, RAN.add)
_INSTRUMENTED: set[str] = set()  # the modules compiled by `_SnapshotLoader`


def _mark(module: str, line: int) -> ast.Expr:
    # `__hw3_ran__((module, line))`: a constant tuple, so one dict lookup and one set insertion per call.
    return ast.Expr(ast.Call(ast.Name(RAN_NAME, ast.Load()), [ast.Constant((module, line))], []))


def _body_start(body: list) -> int:
    """Where a function's (or module's) own statements start: after its docstring and future imports."""
    i = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str) else 0
    while i < len(body) and isinstance(body[i], ast.ImportFrom) and body[i].module == "__future__":
        i += 1
    return i


class _Instrument(ast.NodeTransformer):
    """Every function and lambda records that it ran, on entry. Nothing else changes: the statement takes
    the location of the body's first statement (tracebacks and line numbers are unchanged), a lambda's
    body becomes `(__hw3_ran__(...), body)[1]`. The fingerprint reads the source, never this code."""

    def __init__(self, module: str):
        self.module = module

    def _function(self, node):
        self.generic_visit(node)
        at = _body_start(node.body)
        mark = ast.copy_location(_mark(self.module, node.lineno), node.body[min(at, len(node.body) - 1)])
        node.body.insert(at, mark)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node):
        self.generic_visit(node)
        pair = ast.Tuple([_mark(self.module, node.lineno).value, node.body], ast.Load())
        node.body = ast.copy_location(ast.Subscript(pair, ast.Constant(1), ast.Load()), node.body)
        return node


class _SnapshotLoader(importlib.machinery.SourceFileLoader):
    """Compiles from the bytes it read, and keeps them (no bytecode cache: it might not match them).

    The code is instrumented (`_Instrument`) so that a run can tell which functions ran at the cost of
    a set insertion per call of a package function (a tracing hook slowed an MLP epoch by about 25%)."""

    def get_code(self, fullname):
        source = self.get_data(self.path)
        with _LOCK:
            _SOURCES[fullname] = source
            _INSTRUMENTED.add(fullname)
        tree = ast.parse(source, self.path)
        tree = _Instrument(fullname).visit(tree)
        if tree.body:
            tree.body.insert(_body_start(tree.body), ast.copy_location(_mark(fullname, 0), tree.body[0]))
        ast.fix_missing_locations(tree)
        return compile(tree, self.path, "exec", dont_inherit=True)



def instrumented(module: str) -> bool:
    """Was `module` compiled by the snapshotting loader (so that its functions record their runs)?"""
    return module in _INSTRUMENTED


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.partition(".")[0] not in _WATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return None  # not a plain source file: leave it to the usual finders
        spec.loader = _SnapshotLoader(fullname, spec.origin)
        return spec


_FINDER = _Finder()


def watch(package: str) -> None:
    """Compile every module of `package` imported from now on through the snapshotting loader."""
    _WATCHED.add(package)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def imported_source(module: str) -> bytes | None:
    """The bytes `module` was compiled from (for a module imported before `watch`: its file when first asked)."""
    with _LOCK:
        if module not in _SOURCES:
            path = getattr(sys.modules.get(module), "__file__", None)
            source = _read(path) if path else None
            if source is None:
                return None
            _SOURCES[module] = source
        return _SOURCES[module]


def changed_on_disk(modules) -> list[str]:
    """The modules among `modules` whose file on disk is no longer the source this process runs."""
    changed = []
    for module in sorted(set(modules)):
        path = getattr(sys.modules.get(module), "__file__", None)
        if path is None:
            continue
        before = imported_source(module)
        if before is None or _read(path) != before:
            changed.append(module)
    return changed
