"""Read an `output.joblib` without running code from it.

A pickle names the callables that rebuild it (`find_class`), so a crafted `output.joblib` can run
any command the moment it is loaded, even with a matching `output_sha256` (whoever crafted it can
recompute that). The store only ever writes plain data: dicts, lists, tuples, strings, numbers,
numpy arrays, dtypes and scalars. `load` therefore unpickles with joblib's own `NumpyUnpickler`
(which reads the arrays joblib wrote), restricted to the few globals that rebuild such data;
anything else is refused before it is called.

joblib (>= 1.6) reads an array of Python objects as a nested pickle whose `find_class` is the outer
unpickler's, so the restriction covers those too (`tests/test_safeload.py` checks it).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

FINGERPRINT_EXEMPT = True  # how results are read is not what they are (see hw3.store.fingerprint.closure)

# (module, name) → what it may be. numpy moved its internals from numpy.core to numpy._core in 2.0;
# a cache written by either loads with either.
_NUMPY_INTERNALS = ("_reconstruct", "scalar", "_frombuffer")
_ALLOWED: set[tuple[str, str]] = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),  # joblib's placeholder for an array's raw bytes
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("builtins", "complex"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
    *((f"numpy.{core}.{module}", name) for core in ("core", "_core") for module in ("multiarray", "numeric")
      for name in _NUMPY_INTERNALS),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to build something the store never writes (a function, a class, a module)."""


class _RestrictedUnpickler(NumpyUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"it asks to call {module}.{name}, which the store never writes")
        found = super().find_class(module, name)
        if found is NumpyArrayWrapper or not isinstance(found, type) or found in (complex, set, frozenset, slice) \
                or found.__module__.startswith("numpy"):
            return found
        raise UnsafePickleError(f"{module}.{name} is not a numpy or builtin type")  # defensive: a patched module

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("it holds a persistent reference, which the store never writes")


def load(path: Path) -> Any:
    """The object in `path`, a joblib file the store wrote; UnsafePickleError if it needs anything else.

    Only uncompressed files are read (the store never compresses): a compressed one is refused.
    """
    with open(path, "rb") as f:
        if f.read(1) != pickle.PROTO:
            raise UnsafePickleError("it is not an uncompressed joblib pickle, which is all the store writes")
        f.seek(0)
        return _RestrictedUnpickler(str(path), f, ensure_native_byte_order=True).load()
