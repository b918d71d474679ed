"""What a result depends on: the code it reaches, the constants it reads, the data files, the versions.

Code is found statically. From an experiment's roots (its function, its config class, and what the
experiment declares for a given config) we walk the AST of each top-level definition, resolve the
names it uses in its module's globals, and follow every function or class of the same package.
Each definition is fingerprinted by the hash of its AST with docstrings dropped, so comments,
docstrings and formatting change nothing, while any change to what the code does changes the hash.

What a static walk cannot see, and how we handle it:
- Dispatch on a config value through a table (`MODELS[config.model]`): the walk hashes the table
  by the *names* it holds, not their code, and the experiment declares the object the config
  selects (`Experiment(code=...)`), so an MLP change does not mark the CNN runs stale.
- `getattr` with computed names, and code in other packages (torch, numpy): the latter is covered
  by the recorded library versions; the former is avoided in the package (a test checks that every
  registered experiment's closure includes its model).
- Data: the files an experiment reads are recorded as it runs (`record_data_file`), with a hash.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import hashlib
import importlib
import inspect
import os
import platform
import re
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

FINGERPRINT_EXEMPT = True  # see `closure`


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Code


@functools.lru_cache(maxsize=None)
def _module_tree(module_name: str, mtime_ns: int) -> dict[str, ast.AST]:
    """Top-level definitions of a module's source file, by name (re-read when the file changes)."""
    path = sys.modules[module_name].__file__
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    defs: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
    return defs


def _definitions(module_name: str) -> dict[str, ast.AST]:
    return _module_tree(module_name, os.stat(sys.modules[module_name].__file__).st_mtime_ns)


class _DropDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def normalised_source_hash(node: ast.AST, known_fields: frozenset[str] | None = None) -> str:
    """Hash of a definition's AST without docstrings; `ast.dump` omits line numbers and comments.

    With `known_fields`, a dataclass is hashed without its defaulted fields not named there: the
    hash it had before such fields were added (see `closure`).
    """
    clean = _DropDocstrings().visit(ast.parse(ast.unparse(node)))
    if known_fields is not None:
        for cls in clean.body:
            if isinstance(cls, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in cls.decorator_list):
                cls.body = [s for s in cls.body if not (isinstance(s, ast.AnnAssign) and s.value is not None and isinstance(s.target, ast.Name)
                                                        and s.target.id not in known_fields)] or [ast.Pass()]
    return _digest(ast.dump(clean))


@functools.lru_cache(maxsize=None)
def _definition_hash(module_name: str, name: str, mtime_ns: int, known_fields: frozenset[str] | None = None) -> str:
    return normalised_source_hash(_module_tree(module_name, mtime_ns)[name], known_fields)


def _unwrap(obj: Any) -> Any:
    """The function behind a decorator object (e.g. an Experiment) or functools.wraps."""
    while True:
        inner = getattr(obj, "__wrapped__", None)
        if inner is None:
            return obj
        obj = inner


def _identity(obj: Any, package: str) -> tuple[str, str] | None:
    """(module, top-level name) of a function or class defined at the top level of a module of `package`."""
    obj = _unwrap(obj)
    if not isinstance(obj, (types.FunctionType, type)):
        return None
    module, qualname = getattr(obj, "__module__", None) or "", getattr(obj, "__qualname__", "")
    if module.split(".")[0] != package or module not in sys.modules or getattr(sys.modules[module], "FINGERPRINT_EXEMPT", False):
        return None
    top = qualname.split(".")[0]
    return (module, top) if top in _definitions(module) else None


def _references(node: ast.AST) -> Iterator[tuple[str, ...]]:
    """Dotted name chains loaded in `node`: `train.fit` → ('train', 'fit'), `MLP` → ('MLP',)."""
    for sub in ast.walk(node):
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


def _constant_hash(value: Any, known_fields: frozenset[str] | None = None) -> str:
    # Object addresses in a repr change between processes and mean nothing.
    text = repr(value) if known_fields is None else _repr_without_new_fields(value, known_fields)
    return _digest(re.sub(r" at 0x[0-9a-fA-F]+", "", text))


def _repr_without_new_fields(value: Any, known: frozenset[str]) -> str:
    """`repr(value)`, leaving out the dataclass fields not in `known` that hold their default."""
    if (dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.repr
            and getattr(type(value).__repr__, "__wrapped__", None) is not None):  # the generated repr
        parts = []
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            try:
                is_new = f.name not in known and bool(v == default)
            except Exception:
                is_new = False
            if f.repr and not is_new:
                parts.append(f"{f.name}={_repr_without_new_fields(v, known)}")
        return f"{type(value).__qualname__}({', '.join(parts)})"
    if type(value) in (tuple, list):
        inner = [_repr_without_new_fields(v, known) for v in value]
        if type(value) is list:
            return "[" + ", ".join(inner) + "]"
        return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
    if type(value) is dict:
        return "{" + ", ".join(f"{_repr_without_new_fields(k, known)}: {_repr_without_new_fields(v, known)}" for k, v in value.items()) + "}"
    return repr(value)


def closure(roots: Iterable[Any], package: str, known_fields: Iterable[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """({'module:Name': hash} of every definition reached, {'module:NAME': hash} of constants read).

    Modules that set FINGERPRINT_EXEMPT (the store, this module, paths) are not followed: they decide
    where and how results are kept, not what they are, so editing them must not invalidate results.

    `known_fields` (the field names of a stored config) hashes every dataclass, and every dataclass
    instance in a constant, as if its defaulted fields not named there did not exist: a definition
    whose hash then matches the stored one changed only by new defaulted config fields.
    """
    files = tuple(sorted((m, os.stat(mod.__file__).st_mtime_ns) for m, mod in list(sys.modules.items())
                         if m.split(".")[0] == package and getattr(mod, "__file__", None)))
    known = None if known_fields is None else frozenset(known_fields)
    code, constants = _closure(tuple(roots), package, files, known)
    return dict(code), dict(constants)


@functools.lru_cache(maxsize=256)
def _closure(roots: tuple, package: str, _files: tuple, known: frozenset[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    # `_files` (module mtimes) is only part of the memo key: an edited file invalidates the memo.
    code: dict[str, str] = {}
    constants: dict[str, str] = {}
    todo = [r for r in roots]
    while todo:
        ident = _identity(todo.pop(), package)
        if ident is None:
            continue
        key = f"{ident[0]}:{ident[1]}"
        if key in code:
            continue
        node = _definitions(ident[0])[ident[1]]
        code[key] = _definition_hash(ident[0], ident[1], os.stat(sys.modules[ident[0]].__file__).st_mtime_ns, known)
        namespace = vars(sys.modules[ident[0]])
        for chain in set(_references(node)):
            if chain[0] not in namespace:
                continue  # a local, a parameter or a builtin
            value, owner, name = namespace[chain[0]], ident[0], chain[0]
            for attr in chain[1:]:  # follow module attributes: models.MLP, hw3.train.fit
                if not isinstance(value, types.ModuleType) or not hasattr(value, attr):
                    break
                owner, name, value = value.__name__, attr, getattr(value, attr)
            if isinstance(value, types.ModuleType):
                continue
            if _is_constant(value):
                if owner.split(".")[0] == package and not getattr(sys.modules.get(owner), "FINGERPRINT_EXEMPT", False):
                    constants[f"{owner}:{name}"] = _constant_hash(value, known)
            else:
                todo.append(value)
    return code, constants


# ----------------------------------------------------------------------------------------------
# Data files: recorded while an experiment runs, hashed by content


_recording: list[list[Path]] = []


@contextlib.contextmanager
def recording_data_files() -> Iterator[list[Path]]:
    """Collect the data files read inside the block (see `record_data_file`)."""
    files: list[Path] = []
    _recording.append(files)
    try:
        yield files
    finally:
        _recording.pop()


def record_data_file(path: Path) -> None:
    """Called by the data layer for every file an experiment reads (even when served from memory)."""
    for files in _recording:
        if path not in files:
            files.append(path)


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def file_hash(path: Path) -> str | None:
    """Content hash of a file, or None when it is not there (e.g. rendering without the datasets)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _file_hash(str(path), st.st_size, st.st_mtime_ns)


# ----------------------------------------------------------------------------------------------
# Environment: library versions (compared) and the machine (reported only)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in ("torch", "torchvision", "numpy"):
        try:
            out[lib] = str(importlib.import_module(lib).__version__)
        except ImportError:
            out[lib] = "absent"
    return out


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
