"""What a result depends on: the code it reaches, the constants it reads, the data files, the versions.

Code is found statically, then checked against what ran. From an experiment's roots (its function, its
config classes, and what the experiment declares for a given config) we walk the AST of each top-level
definition, resolve the names it uses in its module's globals, and follow every function, class or
module-level binding of the same package. While the experiment runs, every package function that runs
is recorded (`hw3.store.runtime`), and those the walk missed are added as roots (stored as `ran` in
meta.json, and walked from again whenever the entry's status is computed).

Each definition is fingerprinted by the hash of a *normal form* of its AST, so that edits which cannot
change what the code does change nothing, and every other edit changes the hash. The rules of the
normal form, and why each is sound (cannot hide a change in behaviour):

- Docstrings, comments, formatting and line numbers are dropped. Python never executes comments
  or layout; a docstring is only read through `__doc__`, which no reached code reads.
- Annotations are dropped, in modules with `from __future__ import annotations` only: there they
  are never evaluated, just stored as strings, and nothing in the package reads them
  (`typing.get_type_hints`, `__annotations__`). So `x: T = v` outside a class body is `x = v`. Two
  exceptions keep behaviour: a *bare* annotation in a function (`x: int`) still makes `x` local, so
  it becomes `x: _`; and in a class body an annotated name still creates a dataclass field, so the
  statement stays, with its target and default, and only its annotation is replaced by a
  placeholder, unless the annotation mentions `ClassVar`, `InitVar` or `KW_ONLY` (which dataclasses
  read from the string: those are kept verbatim). In a module without the future import,
  annotations are evaluated and kept.
- Local variables are alpha-renamed (`%0`, `%1`, ... by first occurrence). Python's own symbol
  table (`symtable`) decides what is local: a name is renamed only if in *every* scope of the
  definition where it occurs it is a function local (or a free variable bound to one), never a
  parameter (callers may pass it by keyword), a global, a builtin, an import, a class attribute or
  the name of a nested function or class (visible in `__qualname__`). The renaming is injective
  and the new names cannot clash with real ones, so two definitions with the same normal form differ
  only by consistent renaming of function locals, which Python cannot observe; a definition that
  could observe its locals (`locals()`, `vars()`, `dir()`, `eval`, `exec`, frames) is not renamed.
- The text of error messages is dropped: only string constants (and the literal parts of f-strings)
  that are arguments of the exception constructor in a `raise` statement. A raised exception ends
  the computation (no result is stored) unless something catches it; so the rule is used only when
  no reached definition reads a caught exception (`except E as e` whose `e` is used other than in
  another `raise`): otherwise every message is hashed. Expressions inside f-strings are kept, since
  they are evaluated.
- Definitions are identified by content, not by name or module (a Merkle hash). In a definition's
  normal form every global name that resolves to another reached definition or binding is replaced
  by that one's hash, and every global that resolves outside the package (a module, a library
  function, a builtin shadowed at module level) by what it is (`torch.nn.functional`,
  `torch.optim.Adam`). So `train.fit(...)` and `fit(...)` (after `from hw3.nn.train import fit`) are
  the same, a caller changes when anything it reaches changes however deep, and a definition moved
  to another module unchanged keeps its hash. A binding's hash includes its value's. Within a cycle
  (recursion), a reference is by module and name instead.
- A function's own name (and module) is dropped when nothing can read it: it is not a root, every
  reached reference to it calls it (`f(...)`; it is never passed, stored or `f.attr`-ed), and it has
  no decorator, no nested function, class or lambda (their qualname holds it) and no introspection
  (`__name__`, frames). So renaming a helper with its callers, or moving it, stales nothing. Classes
  keep their names (an instance shows it: repr, pickles, `type(x).__name__`).
- The store compares the stored and current hashes as multisets (`hw3.store.cached._same`): names
  only serve to say what changed. So an unchanged same-named copy in another module cannot stand in
  for an edited definition.

Module-level code counts. The top-level statements of a reached module that are not definitions are
part of the fingerprint of every result that reaches the module (and of every package module it
imports, since importing runs that module's top level):
- a name bound once, by `NAME = <pure expression>`, is a *binding*: hashed like a definition when
  reached code reads it (and its value too, when it is data). Pure means no call other than to known
  side-effect-free builtins (`tuple`, `dict`, `dataclasses.replace`, `functools.partial`, ...),
  `logging.getLogger` (it only creates the named logger; logging is output, never a result; a
  logger's value counts by its name) and package dataclasses with generated methods only, no walrus,
  no yield: evaluating it can do nothing but create the value, so if no reached code reads the name,
  it cannot matter;
- everything else (calls such as `torch.set_default_dtype`, attribute or item assignments such as
  `CNN.CHANNELS = ...` or `F.cross_entropy = ...`, a name bound twice, impure bindings, `if`/`for`/
  `try` blocks) is hashed, in order, as the module's `<module>` code; except an `if TYPE_CHECKING:`
  block without `else`, whose test is `typing.TYPE_CHECKING`, False at run time: it never runs;
- imports are not hashed as text (so moving code does not stale): what they bind is checked through
  the names reached code reads, and package modules they import are included as above.

Values (constants, and library data a definition reads) are hashed by a canonical text: their repr,
except arrays and tensors (by dtype, shape and the sha256 of their bytes: numpy and torch shorten the
repr of a large one), sets (sorted: their order follows PYTHONHASHSEED), loggers (by name) and object
addresses (dropped).

What a static walk cannot see, and how we handle it:
- Dispatch on a config value through a table (`MODELS[config.model]`): tables are `Table`s, which
  the walk skips, and the experiment declares the entries a config selects (`Experiment(code=...)`),
  so adding a model or an optimiser stales nothing that existed. This is checked, not trusted: while
  an experiment runs, every lookup in a `Table` is recorded, and the store refuses to write a result
  that used an entry it did not declare. A declared lambda or nested function counts through the
  top-level statement that holds it (for a lambda in a Table: the whole Table's statement).
- `getattr` with a computed name, `importlib.import_module`, a function added to a dict by a
  registration decorator, an import inside a function: the walk does not follow them, but whatever
  of the package runs is recorded and added (above). A function that did not run cannot have
  changed the result; one that did is in the fingerprint with everything it reaches.
- Functions declared `counted_if_run` (the mirror check before a download) are not followed: they
  count only if they run, which the recording checks.
- Run lists (`FASHION`, `bonus.RUNS`): a config class is walked as a root without following the
  names in its field defaults (`runs = tuple(c for c in FASHION ...)`), since the store compares the
  whole stored config, every field, with the current one instead.
- Inputs no source shows are refused while a run executes (`hw3.store.runtime`): an environment
  variable read by package code outside the exempt modules (unless declared with
  `hw3.store.runtime.declare_not_a_result`: trusted), and a package file other than source
  opened (`np.load` of a shipped array). An array loaded at import time and bound to a module name is
  a constant: hashed by its bytes.
- Code in other packages (torch, numpy) is covered by the recorded library versions.
- Data: the files an experiment reads are recorded as it runs (`record_data_file`), with a hash.
- The code that ran is the code fingerprinted: the package's modules are compiled from bytes kept by
  `hw3.store.sources`, and a run is refused if the reached modules (and those that ran) differ on disk
  from them, before it starts or before its result is written.

Not covered (documented, not checked): a constant read through an import inside a function or through
`getattr(module, name)` when no function of that module runs; an entry migrated by
tools/migrate_store.py has no record of what ran (only its static closure, as when it was computed);
a module of a package that does not call `hw3.store.sources.watch` is snapshotted when first asked
for, so an edit before that is not seen (and its runs are recorded by the slower trace hook); a
dynamic lookup by name (`getattr(module, "f", default)`) of a function whose name was dropped.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import platform
import re
import symtable
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

FINGERPRINT_EXEMPT = True  # see `closure`
MODULE_CODE = "<module>"  # the key suffix of a module's top-level code: 'hw3.nn.train:<module>'


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stat_signature(path: str | os.PathLike) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None when it is not there: the key of every memo below."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


# ----------------------------------------------------------------------------------------------
# Tables: dispatch on a config value, checked at run time


_lookups: list[list[tuple[str, Any, Any]]] = []  # one list per experiment running in this process


class Table(dict):
    """A dict of package objects selected by a config value (`MODELS[config.model]`).

    The fingerprint walk skips a Table: each experiment declares the entries its config selects
    (`Experiment(code=...)`). While an experiment runs, lookups are recorded, so the store can
    refuse a result that used an entry it did not declare; iterating a Table inside a run is
    recorded as using all of it.
    """

    def __init__(self, *args, name: str = "table", **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name

    def _record(self, key: Any, value: Any) -> None:
        for lookups in _lookups:
            lookups.append((self.name, key, value))

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self._record(key, value)
        return value

    def get(self, key, default=None):
        if key in self:
            return self[key]
        return default

    def __contains__(self, key) -> bool:
        found = super().__contains__(key)
        self._record(key, super().__getitem__(key) if found else KeyError)
        return found

    def _all(self) -> None:
        for key, value in super().items():
            self._record(key, value)

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def values(self):
        self._all()
        return super().values()

    def items(self):
        self._all()
        return super().items()

    def __reduce__(self):  # pickles (to worker processes) as a Table with its name
        return (_make_table, (dict(super().items()), self.name))


def _make_table(entries: dict, name: str) -> Table:
    return Table(entries, name=name)


@contextlib.contextmanager
def recording_lookups() -> Iterator[list[tuple[str, Any, Any]]]:
    """Collect the (table, key, value) of every Table lookup inside the block."""
    lookups: list[tuple[str, Any, Any]] = []
    _lookups.append(lookups)
    try:
        yield lookups
    finally:
        _lookups.remove(lookups)


# ----------------------------------------------------------------------------------------------
# Modules: top-level definitions, bindings and module-level code (re-read when the file changes)


@dataclasses.dataclass
class _Module:
    defs: dict[str, ast.AST]  # def / class by name
    bindings: dict[str, ast.stmt]  # NAME = expr, NAME bound once at top level (purity is decided later)
    rest: list[ast.stmt]  # every other non-import, non-definition statement, in order
    imports: list[str]  # absolute names of the modules imported at top level
    future_annotations: bool


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    names = []
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.append(node.id)
    return names


def _imported_modules(stmt: ast.stmt, package: str | None) -> list[str]:
    if isinstance(stmt, ast.Import):
        return [a.name for a in stmt.names]
    if isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__":
        base = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package) if stmt.level else stmt.module
        # `from . import models` imports the submodule `models`; `from .x import f` imports `x`.
        return [base, *(f"{base}.{a.name}" for a in stmt.names)]
    return []


@functools.lru_cache(maxsize=None)
def _parse_module(path: str, signature: tuple[int, int] | None, package: str | None) -> _Module:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]  # the module docstring
    counts: dict[str, int] = {}
    for stmt in body:
        for name in set(_bound_names(stmt)):
            counts[name] = counts.get(name, 0) + 1
    defs, bindings, rest, imports, future = {}, {}, [], [], False
    for stmt in body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            future = future or any(a.name == "annotations" for a in stmt.names)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imports += _imported_modules(stmt, package)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[stmt.name] = stmt
        elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
              and counts[stmt.targets[0].id] == 1):
            bindings[stmt.targets[0].id] = stmt
        elif (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None
              and counts[stmt.target.id] == 1):
            bindings[stmt.target.id] = stmt
        else:
            rest.append(stmt)
    return _Module(defs, bindings, rest, imports, future)


def _module_info(module_name: str) -> _Module:
    module = sys.modules[module_name]
    path = module.__file__
    return _parse_module(path, stat_signature(path), getattr(module, "__package__", None))


def _definitions(module_name: str) -> dict[str, ast.AST]:
    return _module_info(module_name).defs


# ----------------------------------------------------------------------------------------------
# The normal form of a definition


class _DropDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


_KEPT_ANNOTATIONS = re.compile(r"\b(ClassVar|InitVar|KW_ONLY)\b")
_PLACEHOLDER = "_"


class _AnnotatedToPlain(ast.NodeTransformer):
    """`x: T = v` outside a class body is `x = v`: under the future import the annotation is a string that
    nothing reads (in a function it is not even stored). In a class body it makes a dataclass field: kept."""

    def __init__(self, keep: set[int]):
        self.keep = keep

    def visit_AnnAssign(self, node):
        if id(node) in self.keep or node.value is None:
            return node
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def _drop_annotations(tree: ast.AST) -> None:
    """Annotations replaced by a placeholder (see the module docstring for what must stay)."""
    in_class = {id(s) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for s in c.body if isinstance(s, ast.AnnAssign)}
    _AnnotatedToPlain(in_class).visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None:
                    a.annotation = None
        elif isinstance(node, ast.AnnAssign) and not _KEPT_ANNOTATIONS.search(ast.unparse(node.annotation)):
            node.annotation = ast.Name(_PLACEHOLDER, ast.Load())


def _message_arg(arg: ast.expr) -> ast.expr:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return ast.Constant("<message>")
    if isinstance(arg, ast.JoinedStr):  # keep what is evaluated, drop the literal text
        return ast.JoinedStr([v for v in arg.values if isinstance(v, ast.FormattedValue)])
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add):
        return ast.BinOp(_message_arg(arg.left), ast.Add(), _message_arg(arg.right))
    return arg


def _drop_messages(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            node.exc.args = [_message_arg(a) for a in node.exc.args]


def reads_caught_exception(tree: ast.AST) -> bool:
    """Does `tree` use a caught exception (`except E as e`) other than inside a `raise`?"""
    for handler in ast.walk(tree):
        if isinstance(handler, ast.ExceptHandler) and handler.name:
            inside_raise = {id(n) for stmt in ast.walk(handler) if isinstance(stmt, ast.Raise) for n in ast.walk(stmt)}
            for n in ast.walk(handler):
                if isinstance(n, ast.Name) and n.id == handler.name and id(n) not in inside_raise:
                    return True
    return False


_INTROSPECTION = {"locals", "vars", "dir", "eval", "exec"}


def _renamable_locals(tree: ast.AST) -> set[str]:
    """Names that are function locals wherever they occur in `tree` (see the module docstring)."""
    for n in ast.walk(tree):
        if (isinstance(n, ast.Name) and n.id in _INTROSPECTION) or (isinstance(n, ast.Attribute) and n.attr in (
                "_getframe", "currentframe", "f_locals")) or isinstance(n, ast.match_case):
            return set()
    candidates: set[str] = set()
    forbidden: set[str] = set()

    def visit(table: symtable.SymbolTable) -> None:
        for child in table.get_children():
            forbidden.add(child.get_name())  # nested functions and classes (and the definition itself)
            visit(child)
        if table.get_type() != "function":
            forbidden.update(s.get_name() for s in table.get_symbols())
            return
        for s in table.get_symbols():
            if s.is_parameter() or s.is_global() or s.is_declared_global() or s.is_imported():
                forbidden.add(s.get_name())
            elif s.is_local() or s.is_free() or s.is_nonlocal():
                candidates.add(s.get_name())
            else:
                forbidden.add(s.get_name())

    visit(symtable.symtable(ast.unparse(tree), "<definition>", "exec"))
    return candidates - forbidden


class _Rename(ast.NodeTransformer):
    def __init__(self, names: set[str]):
        self.names, self.new = names, {}

    def _map(self, name: str) -> str:
        if name not in self.names:
            return name
        return self.new.setdefault(name, f"%{len(self.new)}")

    def visit_Name(self, node):
        node.id = self._map(node.id)
        return node

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self._map(node.name)
        self.generic_visit(node)
        return node

    def visit_Nonlocal(self, node):
        node.names = [self._map(n) for n in node.names]
        return node


def _drop_fields(tree: ast.AST, known_fields: frozenset[str]) -> None:
    """A dataclass without its defaulted fields not in `known_fields` (see `closure`)."""
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in cls.decorator_list):
            cls.body = [s for s in cls.body if not (isinstance(s, ast.AnnAssign) and s.value is not None and isinstance(s.target, ast.Name)
                                                    and s.target.id not in known_fields)] or [ast.Pass()]


def normal_form(node: ast.AST, future_annotations: bool = True, drop_messages: bool = True,
                known_fields: frozenset[str] | None = None) -> ast.Module:
    """The definition `node` in normal form (a fresh tree; see the module docstring)."""
    tree = _DropDocstrings().visit(ast.parse(ast.unparse(node)))
    if known_fields is not None:
        _drop_fields(tree, known_fields)
    if future_annotations:
        _drop_annotations(tree)
    if drop_messages:
        _drop_messages(tree)
    return _Rename(_renamable_locals(tree)).visit(tree)


def normalised_source_hash(node: ast.AST, known_fields: frozenset[str] | None = None) -> str:
    """Hash of a definition's normal form; `ast.dump` omits line numbers and comments."""
    return _digest(ast.dump(normal_form(node, known_fields=known_fields)))


@functools.lru_cache(maxsize=None)
def _normal(module_name: str, name: str, signature: Any, drop_messages: bool, known: frozenset[str] | None) -> ast.Module:
    info = _module_info(module_name)
    node = info.defs.get(name) or info.bindings[name]
    return normal_form(node, info.future_annotations, drop_messages, known)


# ----------------------------------------------------------------------------------------------
# Resolving names


def _unwrap(obj: Any) -> Any:
    """The function behind a decorator object (e.g. an Experiment) or functools.wraps."""
    while True:
        inner = getattr(obj, "__wrapped__", None)
        if inner is None:
            return obj
        obj = inner


def _in_package(module_name: str, package: str) -> bool:
    return (module_name.split(".")[0] == package and module_name in sys.modules
            and getattr(sys.modules[module_name], "__file__", None) is not None
            and not getattr(sys.modules[module_name], "FINGERPRINT_EXEMPT", False))


def _identity(obj: Any, package: str) -> tuple[str, str] | None:
    """(module, top-level name) of a function or class defined at the top level of a module of `package`."""
    obj = _unwrap(obj)
    if not isinstance(obj, (types.FunctionType, type)):
        return None
    module, qualname = getattr(obj, "__module__", None) or "", getattr(obj, "__qualname__", "")
    if not _in_package(module, package):
        return None
    top = qualname.split(".")[0]
    return (module, top) if top in _definitions(module) else None


def _binding_of(value: Any, name: str, package: str) -> tuple[str, str] | None:
    """The package module that binds `name` to `value` at top level (a binding imported elsewhere)."""
    for module_name, module in list(sys.modules.items()):
        if _in_package(module_name, package) and vars(module).get(name, _MISSING) is value \
                and name in _module_info(module_name).bindings:
            return module_name, name
    return None


_MISSING = object()


def _references(node: ast.AST, skip: set[int] = frozenset()) -> Iterator[tuple[str, ...]]:
    """Dotted name chains loaded in `node` (outside the nodes in `skip`): `train.fit` → ('train', 'fit'), `MLP` → ('MLP',)."""
    for sub in ast.walk(node):
        if id(sub) in skip:
            continue
        if isinstance(sub, ast.Attribute):
            chain, cur = [], sub
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                yield (cur.id, *reversed(chain))
        elif isinstance(sub, ast.Name):
            yield (sub.id,)


def _is_constant(value: Any) -> bool:
    return not (callable(value) or isinstance(value, types.ModuleType))


def _describe_external(value: Any) -> str:
    """What a global bound outside the package is: a module, a library function or class, or data."""
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if callable(value) and getattr(value, "__qualname__", None):
        return f"{getattr(value, '__module__', None)}.{value.__qualname__}"
    return f"{type(value).__module__}.{type(value).__qualname__} {_constant_hash(value)}"


# Calls that only build a value (no side effects): what a pure binding may call. (Not `map`,
# `sorted`, `min`: they call functions given as arguments.)
_PURE_BUILTINS = {tuple, list, dict, set, frozenset, range, reversed, enumerate, zip, len, str, int, float, bool}
# `logging.getLogger` only creates (once) and returns the named logger: logging is output, never a result.
_PURE_FUNCTIONS = {dataclasses.field, functools.partial, Table, logging.getLogger}
_PURE_METHODS = {"values", "items", "keys", "get", "index", "count", "copy"}


def _resolve(expr: ast.expr, namespace: dict) -> Any:
    """The object a Name or an attribute chain of names denotes now, or _MISSING."""
    chain = next(iter(_references(expr)), None) if isinstance(expr, (ast.Name, ast.Attribute)) else None
    if chain is None:
        return _MISSING
    value = namespace.get(chain[0], getattr(builtins, chain[0], _MISSING))
    for attr in chain[1:]:
        if value is _MISSING or not isinstance(value, (types.ModuleType, type)):
            return _MISSING  # an attribute of data may be a property: code we do not see
        value = getattr(value, attr, _MISSING)
    return value


def _plain_dataclass(cls: Any, package: str) -> bool:
    """A package dataclass whose special methods are all generated: constructing one runs no package code."""
    ident = _identity(cls, package)
    if ident is None or not dataclasses.is_dataclass(cls):
        return False
    node = _definitions(ident[0])[ident[1]]
    # `__call__` runs only when an instance is called, which a pure expression never does.
    return not any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name.startswith("__") and s.name != "__call__"
                   for s in node.body)


def _all_dataclasses_plain(package: str, module: str) -> bool:
    """`dataclasses.replace(obj, ...)` calls `type(obj).__init__`: pure when every dataclass whose instance
    the module's top level can hold is plain: those of the module and of the package modules it imports
    (transitively), which is all that was loaded when it ran. (Independent of what else is loaded now.)"""
    return _all_plain(package, module, package_signature(package))


def _imported_closure(module: str, package: str) -> set[str]:
    seen, todo = {module}, [module]
    while todo:
        for imported in _module_info(todo.pop()).imports:
            if _in_package(imported, package) and imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


@functools.lru_cache(maxsize=64)
def _all_plain(package: str, module: str, _files: tuple) -> bool:
    for module_name in sorted(_imported_closure(module, package)):
        namespace = vars(sys.modules[module_name])
        for name in _definitions(module_name):
            cls = namespace.get(name)
            if dataclasses.is_dataclass(cls) and not _plain_dataclass(cls, package):
                return False
    return True


def _is_pure(expr: ast.expr, namespace: dict, package: str) -> bool:
    module = namespace.get("__name__", "")
    """Can evaluating `expr` do anything but build its value? (Conservative: False when unsure.)"""
    todo = [expr]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Lambda):
            continue  # its body runs when called, not when bound
        if isinstance(node, (ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)):
            return False
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _PURE_METHODS and isinstance(
                    _data_value(func.value, namespace), (dict, tuple, list)):
                todo.extend([func.value, *node.args, *node.keywords])
                continue
            target = _resolve(func, namespace)
            try:
                known = target in _PURE_BUILTINS or target in _PURE_FUNCTIONS
            except TypeError:  # unhashable
                known = False
            if target is dataclasses.replace:
                known = _all_dataclasses_plain(package, module)
            if not (known or _plain_dataclass(target, package)):
                return False
            todo.extend([*node.args, *node.keywords])
            continue
        if isinstance(node, ast.Attribute) and _resolve(node, namespace) is _MISSING:
            return False  # an attribute of data: possibly a property, whose code runs here
        todo.extend(ast.iter_child_nodes(node))
    return True


def _data_value(expr: ast.expr, namespace: dict) -> Any:
    return namespace.get(expr.id, _MISSING) if isinstance(expr, ast.Name) else _MISSING


# ----------------------------------------------------------------------------------------------
# Constants


def _constant_hash(value: Any, known_fields: frozenset[str] | None = None) -> str:
    return _digest(_canonical(value, known_fields))


def _canonical(value: Any, known: frozenset[str] | None) -> str:
    """A text that determines `value`: its repr, except where a repr is not that.

    Arrays and tensors by their bytes (numpy and torch shorten the repr of a large one); sets by their
    sorted elements (their order follows PYTHONHASHSEED); a logger by its name (its repr shows a level
    set elsewhere); object addresses dropped (they change between processes and mean nothing). With
    `known`, the dataclass fields not in it that hold their default are left out (see `closure`).
    """
    if type(value) in (tuple, list):
        inner = [_canonical(v, known) for v in value]
        return ("[%s]" if type(value) is list else "(%s)") % ", ".join(inner)
    if type(value) is dict:
        return "{" + ", ".join(f"{_canonical(k, known)}: {_canonical(v, known)}" for k, v in value.items()) + "}"
    if type(value) in (set, frozenset):
        return f"{type(value).__name__}({{{', '.join(sorted(_canonical(v, known) for v in value))}}})"
    if type(value).__module__ == "numpy" and hasattr(value, "tobytes") and hasattr(value, "dtype"):
        if value.dtype.hasobject:
            return f"ndarray({value.dtype.str}, {value.shape}, {_canonical(value.tolist(), known)})"
        return f"ndarray({value.dtype.str}, {value.shape}, {hashlib.sha256(value.tobytes()).hexdigest()})"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        t = t.float() if t.dtype in (torch.bfloat16, torch.float16) else t  # (numpy has no bf16; exact in fp32)
        return f"tensor({value.dtype}, {tuple(value.shape)}, {_canonical(t.numpy(), known)})"
    if isinstance(value, logging.Logger):
        return f"logger {value.name}"
    if (dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.repr
            and getattr(type(value).__repr__, "__wrapped__", None) is not None):  # the generated repr
        parts = []
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            try:
                is_new = known is not None and f.name not in known and bool(v == default)
            except Exception:
                is_new = False
            if f.repr and not is_new:
                parts.append(f"{f.name}={_canonical(v, known)}")
        return f"{type(value).__qualname__}({', '.join(parts)})"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


# ----------------------------------------------------------------------------------------------
# The closure


def config_classes(config: Any) -> list[type]:
    """The dataclass types of `config` and of every config nested in its fields (roots of the walk)."""
    out: list[type] = []
    todo = [config]
    while todo:
        value = todo.pop()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if type(value) not in out:
                out.append(type(value))
            todo.extend(getattr(value, f.name) for f in dataclasses.fields(value))
        elif isinstance(value, (tuple, list)):
            todo.extend(value)
        elif isinstance(value, dict):
            todo.extend(value.values())
    return out


def _field_default_nodes(node: ast.AST) -> set[int]:
    """ids of the AST nodes inside a dataclass's field defaults (not followed for a config root)."""
    if not isinstance(node, ast.ClassDef):
        return set()
    return {id(n) for s in node.body if isinstance(s, ast.AnnAssign) and s.value is not None for n in ast.walk(s.value)}


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """What one closure computation gives (see `closure_details`)."""

    code: dict[str, str]  # 'module:Name' → hash of the definition and, by content, of everything it reaches
    local: dict[str, str]  # 'module:Name' → hash of the definition's own normal form (names as written): for reasons
    constants: dict[str, str]  # 'module:NAME' → hash of the value of a constant read
    modules: tuple[str, ...]  # the package modules reached (whose files must be what ran)


def closure(roots: Iterable[Any], package: str, known_fields: Iterable[str] | None = None,
            config_roots: Iterable[type] = (), ran: Iterable[str] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """({'module:Name': hash} of every definition reached, {'module:NAME': hash} of constants read).

    Modules that set FINGERPRINT_EXEMPT (the store, this module, paths) are not followed: they decide
    where and how results are kept, not what they are, so editing them must not invalidate results.

    `config_roots` are config classes: walked without following their field defaults (the store
    compares the config's values instead). `known_fields` (the field names of a stored config) hashes
    every dataclass, and every dataclass instance in a constant, as if its defaulted fields not named
    there did not exist: a definition whose hash then matches the stored one changed only by new
    defaulted config fields. `ran` are 'module:name' items recorded as having run (`what_ran`): roots too.
    """
    fp = closure_details(roots, package, known_fields, config_roots, ran)
    return dict(fp.code), dict(fp.constants)


def closure_details(roots: Iterable[Any], package: str, known_fields: Iterable[str] | None = None,
                    config_roots: Iterable[type] = (), ran: Iterable[str] = ()) -> Fingerprint:
    known = None if known_fields is None else frozenset(known_fields)
    return _closure(tuple(roots), tuple(config_roots), package, package_signature(package), known, tuple(sorted(set(ran))))


def package_signature(package: str) -> tuple:
    """(module, stat signature) of every loaded module of `package`: changes whenever a source file does."""
    return tuple(sorted((m, stat_signature(mod.__file__)) for m, mod in list(sys.modules.items())
                        if m.split(".")[0] == package and getattr(mod, "__file__", None)))


@functools.lru_cache(maxsize=1024)
def _closure(roots: tuple, config_roots: tuple, package: str, _files: tuple,
             known: frozenset[str] | None = None, ran: tuple[str, ...] = ()) -> Fingerprint:
    # `_files` (module stat signatures) is only part of the memo key: an edited file invalidates the memo.
    walk = _Walk(package, known)
    for root in config_roots:
        walk.add_object(root, as_config=True)
    for root in roots:
        walk.add_object(root)
    for key in ran:
        walk.add_key(key)
    walk.run()
    code, local = walk.hashes()
    return Fingerprint(code, local, dict(walk.constants), tuple(sorted(walk.modules)))


@functools.lru_cache(maxsize=None)
def _chains(module: str, name: str, signature: Any, as_config: bool) -> tuple[tuple[str, ...], ...]:
    """The name chains a definition reads (for a config root, outside its field defaults), sorted."""
    node = _normal(module, name, signature, False, None).body[0]
    skip = _field_default_nodes(node) if as_config else set()
    return tuple(sorted(set(_references(node, skip))))


def counted_if_run(func):
    """Declare that `func` counts in a fingerprint only if it actually runs: the static walk does not follow it.

    For code that runs only in circumstances in which no result is written unseen, such as the
    mirror check before a download (a result computed from downloaded files hashes those files). It is
    checked, not trusted: while an experiment runs every package function that runs is recorded and
    added to the fingerprint (`hw3.store.runtime`), so if `func` does run, it counts with all it reaches.
    """
    func.__fingerprint_counted_if_run__ = True
    return func


# 'module:name' of functions to treat as `counted_if_run` although undecorated: set by tools/migrate_store.py
# when it fingerprints an older commit's code with the markers of today's.
COUNTED_IF_RUN: set[str] = set()


def _is_counted_if_run(value: Any, package: str) -> bool:
    if getattr(_unwrap(value), "__fingerprint_counted_if_run__", False):
        return True
    ident = _identity(value, package) if COUNTED_IF_RUN else None
    return ident is not None and f"{ident[0]}:{ident[1]}" in COUNTED_IF_RUN


def _item_of_code(module: str, code: types.CodeType) -> str:
    """The top-level item ('module:name', or the module's top-level code) a code object belongs to."""
    if code.co_qualname == "<module>":
        return f"{module}:{MODULE_CODE}"
    top = code.co_qualname.split(".")[0]
    return f"{module}:{top}" if top in _module_info(module).defs else _item_at(module, code.co_firstlineno)


def _item_at(module: str, line: int) -> str:
    """The top-level item whose statement spans `line` (0, or none: the module's top-level code)."""
    info = _module_info(module)
    for name, node in [*info.defs.items(), *info.bindings.items()]:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        if first <= line <= node.end_lineno:
            return f"{module}:{name}"
    return f"{module}:{MODULE_CODE}"  # a lambda or comprehension in module-level code, or the module's body


def _ref_chain(node: ast.AST) -> tuple[str, ...] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return (node.id, *reversed(parts)) if isinstance(node, ast.Name) else None


class _Substitute(ast.NodeTransformer):
    """Replaces each resolved global reference (outermost chain first) by a token naming its target by content."""

    def __init__(self, refs: dict, token: Callable[[Any], str]):
        self.refs, self.token = refs, token

    def _visit_ref(self, node):
        chain = _ref_chain(node)
        if chain is not None and isinstance(node.ctx, ast.Load) and chain in self.refs:
            return ast.Name(id=f"<{self.token(self.refs[chain])}>", ctx=ast.Load())
        return self.generic_visit(node)

    visit_Name = visit_Attribute = _visit_ref


def _non_call_targets(tree: ast.AST, refs: dict) -> set:
    """The targets of `refs` that `tree` uses other than by calling them (`f(...)`): passed, stored, `f.attr`."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    out, inside = set(), set()
    for node in ast.walk(tree):  # breadth-first: an outer chain is met before the chains inside it
        if id(node) in inside or not isinstance(node, (ast.Name, ast.Attribute)):
            continue
        chain = _ref_chain(node)
        if chain is not None and chain in refs:
            inside.update(id(n) for n in ast.walk(node))
            if id(node) not in called:
                out.add(refs[chain])
    return out


def _name_unobservable(node: ast.AST) -> bool:
    """Can a plain function's own name (and module) not be read from inside it? No decorator (which gets
    the function object), no nested function, class or lambda (their qualname holds it), no introspection."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.decorator_list:
        return False
    for n in ast.walk(node):
        if n is not node and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return False
        if (isinstance(n, ast.Name) and n.id in _INTROSPECTION) or (isinstance(n, ast.Attribute) and n.attr in (
                "_getframe", "currentframe", "f_code", "f_back", "__name__", "__qualname__")):
            return False
    return True


class _Walk:
    """One closure computation: items are (module, name) definitions and bindings."""

    def __init__(self, package: str, known: frozenset[str] | None):
        self.package, self.known = package, known
        self.todo: list[tuple[str, str, bool]] = []
        self.seen: dict[tuple[str, str], bool] = {}  # item → walked as a config root only
        self.refs: dict[tuple[str, str], dict[tuple[str, ...], Any]] = {}  # item → {chain: target}
        self.roots: set[tuple[str, str]] = set()
        self.absent: set[str] = set()  # recorded items ('module:name') that no longer exist
        self.constants: dict[str, str] = {}
        self.modules: set[str] = set()

    def add_object(self, obj: Any, as_config: bool = False) -> None:
        ident = _identity(obj, self.package)
        func = _unwrap(obj)
        if ident is None and isinstance(func, types.FunctionType) and _in_package(func.__module__, self.package):
            # a lambda (a Table entry, say) or a nested function: its top-level statement counts
            self.add_key(_item_of_code(func.__module__, func.__code__))
            return
        if ident is not None:
            self.roots.add(ident)
            self.todo.append((*ident, as_config))

    def add_key(self, key: str) -> None:
        """A 'module:name' item as a root (one recorded as having run)."""
        module, _, name = key.partition(":")
        if module.split(".")[0] != self.package:
            return
        try:
            if module not in sys.modules:
                importlib.import_module(module)  # imported inside a function, or with importlib, when it ran
        except Exception:
            self.absent.add(key)
            return
        if not _in_package(module, self.package):
            return
        info = _module_info(module)
        if name == MODULE_CODE:
            self.modules.add(module)
        elif name in info.defs or name in info.bindings:
            self.roots.add((module, name))
            self.todo.append((module, name, False))
        else:
            self.absent.add(key)

    def run(self) -> None:
        while self.todo:
            module, name, as_config = self.todo.pop()
            if (module, name) in self.seen and (as_config or not self.seen[(module, name)]):
                continue
            self.seen[(module, name)] = as_config
            self.modules.add(module)
            self._follow(module, name, as_config)
        self._add_imported_modules()

    def _follow(self, module: str, name: str, as_config: bool) -> None:
        namespace = vars(sys.modules[module])
        info = _module_info(module)
        refs = self.refs.setdefault((module, name), {})
        for chain in _chains(module, name, stat_signature(sys.modules[module].__file__), as_config):
            if chain[0] not in namespace:
                continue  # a local, a parameter or a builtin (what ran inside the function is recorded)
            value = namespace[chain[0]]
            if isinstance(value, types.ModuleType):
                if value.__name__.split(".")[0] != self.package:
                    refs[chain[:1]] = ("external", _describe_external(value))
                    continue
                owner, attr_name, depth = value.__name__, None, 1
                for attr in chain[1:]:  # follow module attributes: models.MLP, hw3.nn.train.fit
                    if not isinstance(value, types.ModuleType) or not hasattr(value, attr):
                        break
                    owner, attr_name, value, depth = value.__name__, attr, getattr(value, attr), depth + 1
                if attr_name is not None and not isinstance(value, types.ModuleType):
                    target = self._reach(owner, attr_name, value)
                    if target is not None:
                        refs[chain[:depth]] = target
            elif chain[0] in info.defs or chain[0] in info.bindings or self._package_object(value, chain[0]):
                target = self._reach(module, chain[0], value)
                if target is not None:
                    refs[chain[:1]] = target
            else:  # a library object imported by name: what it is counts (a moved definition may see another)
                refs[chain[:1]] = ("external", _describe_external(value))

    def _package_object(self, value: Any, name: str) -> bool:
        owner = getattr(value, "__module__", None)
        if isinstance(owner, str):
            return owner.split(".")[0] == self.package
        return _binding_of(value, name, self.package) is not None

    def _reach(self, owner: str, name: str, value: Any) -> tuple[str, str] | None:
        """Queue what `owner.name` (bound to `value`) is; the item it resolves to, when it is one."""
        if isinstance(value, Table):
            return None  # entries are declared by the experiment (`code=`) and checked at run time
        if _is_counted_if_run(value, self.package):
            return None  # counts only if it runs (`counted_if_run`): then it is recorded
        if not _in_package(owner, self.package):
            return None
        info = _module_info(owner)
        if name in info.defs and _identity(value, self.package) == (owner, name):
            self.todo.append((owner, name, False))
            return owner, name
        if name in info.bindings:
            self.todo.append((owner, name, False))
            if _is_constant(value):
                self.constants[f"{owner}:{name}"] = _constant_hash(value, self.known)
            return owner, name
        ident = _identity(value, self.package) or _binding_of(value, name, self.package)
        if ident is not None and ident != (owner, name):
            return self._reach(ident[0], ident[1], value)
        if ident is None and _is_constant(value):  # data bound some other way (e.g. in a loop): its value is what counts
            self.constants[f"{owner}:{name}"] = _constant_hash(value, self.known)
        return None

    def _add_imported_modules(self) -> None:
        todo = list(self.modules)
        while todo:
            for imported in _module_info(todo.pop()).imports:
                if _in_package(imported, self.package) and imported not in self.modules:
                    self.modules.add(imported)
                    todo.append(imported)

    def _drop_messages(self) -> bool:
        return not any(_reads_caught(m, n, stat_signature(sys.modules[m].__file__)) for m, n in self.seen)

    def hashes(self) -> tuple[dict[str, str], dict[str, str]]:
        """({key: hash by content}, {key: hash of the definition's own text}).

        By content: every reference to another reached definition is replaced by that definition's
        hash, every reference to a library object by what it is (`torch.nn.functional`). So a caller
        does not change when a callee is renamed or moved with it, and does change when a callee's code
        does, however deep. A plain function used only by calling it also drops its own name
        (`_name_unobservable`). Within a cycle (recursion) a reference is by module and name.
        """
        drop = self._drop_messages()
        trees = {item: _normal(*item, stat_signature(sys.modules[item[0]].__file__), drop, self.known) for item in self.seen}
        non_call: set = set()
        for item, tree in trees.items():
            non_call |= _non_call_targets(tree, self.refs.get(item, {}))
        by_content: dict[tuple[str, str], str] = {}
        stack: list[tuple[str, str]] = []

        def token(target: Any) -> str:
            if target[0] == "external":
                return f"external {target[1]}"
            return f"cycle {target[0]}:{target[1]}" if target in stack else deep(target)

        def deep(item: tuple[str, str]) -> str:
            if item not in by_content:
                stack.append(item)
                tree = _Substitute(self.refs.get(item, {}), token).visit(copy.deepcopy(trees[item]))
                stack.pop()
                node = tree.body[0]
                if item not in self.roots and item not in non_call and _name_unobservable(node):
                    node.name = "<def>"
                by_content[item] = _digest(ast.dump(tree) + "\n" + self.constants.get(f"{item[0]}:{item[1]}", ""))
            return by_content[item]

        code, local = {}, {}
        for item in self.seen:
            key = f"{item[0]}:{item[1]}"
            code[key], local[key] = deep(item), _digest(ast.dump(trees[item]))
        for module in sorted(self.modules):
            text = _module_code(module, self.package, stat_signature(sys.modules[module].__file__))
            if text:
                code[f"{module}:{MODULE_CODE}"] = local[f"{module}:{MODULE_CODE}"] = _digest(text)
        for key in self.absent:
            code[key] = local[key] = "absent"
        return code, local


def what_ran(rec: Any, package: str) -> tuple[list[str], list[str]]:
    """(the 'module:name' items of `package` that ran during a recorded run, what it read that is refused).

    See `hw3.store.runtime`: environment variables read by package code outside exempt modules, and files
    of the package's folder other than its source.
    """
    from hw3.store import runtime

    files = runtime.package_files(package)
    items, refused = set(), []
    for module, line in list(rec.ran):
        if _in_package(module, package):
            items.add(_item_at(module, line))
    for code in list(rec.codes):
        module = files.get(os.path.abspath(code.co_filename))
        if module is not None and _in_package(module, package):
            items.add(_item_of_code(module, code))
    for variable, code in runtime.environment_reads(rec):
        module = files.get(os.path.abspath(code.co_filename))
        if module is not None and _in_package(module, package):
            refused.append(f"read the environment variable {variable} in {module}.{code.co_qualname} (environment "
                           f"variables are not part of a fingerprint: make it a config field, or read it through hw3.environment "
                           f"if it cannot change a result)")
    root = runtime.package_root(package)
    for path in dict.fromkeys(rec.opened):
        full = os.path.abspath(path)
        if root and full.startswith(root + os.sep) and not full.endswith((".py", ".pyc")) and "__pycache__" not in full:
            refused.append(f"opened {full}, a file of the package that is not source (its content is not part of a "
                           f"fingerprint: put data in the data folder and read it with record_data_file)")
    return sorted(items), list(dict.fromkeys(refused))


@functools.lru_cache(maxsize=None)
def _reads_caught(module: str, name: str, _signature: Any) -> bool:
    info = _module_info(module)
    return reads_caught_exception(info.defs.get(name) or info.bindings[name])


@functools.lru_cache(maxsize=None)
def _module_code(module: str, package: str, _signature: Any) -> str:
    """The module's top-level code that is neither a definition, an import nor a pure binding."""
    info = _module_info(module)
    namespace = vars(sys.modules[module])
    # An `if TYPE_CHECKING:` block without `else` never runs (typing.TYPE_CHECKING is False at run time).
    stmts = [s for s in info.rest if not (isinstance(s, ast.If) and not s.orelse and _ref_chain(s.test) is not None
                                          and _ref_chain(s.test)[-1] == "TYPE_CHECKING" and _resolve(s.test, namespace) is False)]
    stmts += [s for s in info.bindings.values() if not _is_pure(s.value, namespace, package)]
    stmts.sort(key=lambda s: s.lineno)
    return "\n".join(ast.dump(normal_form(s, info.future_annotations, drop_messages=False)) for s in stmts)


# ----------------------------------------------------------------------------------------------
# Data files: recorded while an experiment runs, hashed by content


_recording: list[dict[Path, str | None]] = []


@contextlib.contextmanager
def recording_data_files() -> Iterator[dict[Path, str | None]]:
    """Collect the data files read inside the block, with their hash when first read (see `record_data_file`)."""
    files: dict[Path, str | None] = {}
    _recording.append(files)
    try:
        yield files
    finally:
        _recording.remove(files)


def record_data_file(path: Path) -> None:
    """Called by the data layer for every file an experiment reads (even when served from memory)."""
    for files in _recording:
        if path not in files:
            files[path] = file_hash(path)


@functools.lru_cache(maxsize=256)
def _file_hash(path: str, signature: tuple[int, int]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def file_hash(path: Path) -> str | None:
    """Content hash of a file (memoised on its stat signature), or None when it is not there."""
    signature = stat_signature(path)
    return None if signature is None else _file_hash(str(path), signature)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, signature: tuple[int, int]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sha256(path: Path) -> str | None:
    """The full sha256 of a file's bytes (memoised on its stat signature), or None when it is not there."""
    signature = stat_signature(path)
    return None if signature is None else _file_sha256(str(path), signature)


# ----------------------------------------------------------------------------------------------
# Environment: library versions (compared) and the machine (reported only)


@functools.lru_cache(maxsize=None)
def _version_file(lib: str) -> str | None:
    spec = importlib.util.find_spec(lib)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return os.path.join(locations[0], "version.py") if locations else None


@functools.lru_cache(maxsize=None)
def _installed_version(lib: str, path: str | None, signature: tuple[int, int] | None) -> str:
    # torch and torchvision write `__version__ = '2.14.1+cu130'` into <lib>/version.py, with the
    # build suffix that `importlib.metadata` leaves out; read it without importing the library.
    if path is not None and signature is not None:
        match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", Path(path).read_text(), re.M)
        if match:
            return match.group(1)
    try:
        return importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def versions() -> dict[str, str]:
    """Library versions: of the imported module when it is loaded (what runs), else the installed one.

    Reading the installed version spares a render importing torchvision (seconds) only to read its
    version. Memoised on the version file's stat signature, so a reinstall is seen.
    """
    out = {"python": platform.python_version()}
    for lib in ("torch", "torchvision", "numpy"):
        module = sys.modules.get(lib)
        if module is not None and hasattr(module, "__version__"):
            out[lib] = str(module.__version__)
        else:
            path = _version_file(lib)
            out[lib] = _installed_version(lib, path, stat_signature(path) if path else None)
    return out


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_bf16_units() -> str:
    """Which bf16 hardware the CPU has: 'amx_bf16', 'avx512_bf16' or 'none' (Linux flags; else 'unknown')."""
    with contextlib.suppress(OSError):
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "").split()
        return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), "none")
    return "unknown"


def machine(device: str = "cpu") -> dict[str, str]:
    """Where a result was computed. Recorded and reported, never a reason to recompute."""
    import torch

    info = {"cpu": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(), "bf16_units": cpu_bf16_units(),
            "arch": platform.machine(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def source_root(obj: Any) -> str:
    """The top-level package an object belongs to (the walk stays inside it)."""
    return inspect.getmodule(_unwrap(obj)).__name__.split(".")[0]
