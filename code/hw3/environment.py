"""What the environment says: where the data and the cache are, and the on/off flags (HW3_CACHE_ONLY, ...)."""

from __future__ import annotations

import os
from pathlib import Path

FINGERPRINT_EXEMPT = True  # locations do not change results (see hw3.store.fingerprint.closure)

# code/hw3/environment.py → the repository root (the package is installed editable, so this is the checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Root of the torchvision dataset layout (<root>/FashionMNIST/raw/...): $HW3_DATA_DIR or ./data."""
    return Path(os.environ.get("HW3_DATA_DIR") or PROJECT_ROOT / "data").expanduser().resolve()


def cache_dir() -> Path:
    """Root of the joblib cache: $HW3_CACHE_DIR or ./cache (committed)."""
    return Path(os.environ.get("HW3_CACHE_DIR") or PROJECT_ROOT / "cache").expanduser().resolve()


_OFF, _ON = ("", "0", "false", "no", "off"), ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off (or unset); anything else is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ValueError(f"{name}={os.environ[name]!r} is not an on/off value: use 1, true, yes, on or 0, false, no, off")


def cache_only() -> bool:
    """HW3_CACHE_ONLY: never compute or write, a missing or stale entry is an error (renders, tests, CI)."""
    return env_flag("HW3_CACHE_ONLY")


def strict_versions() -> bool:
    """HW3_STRICT_VERSIONS: a library version other than the recorded one makes an entry stale."""
    return env_flag("HW3_STRICT_VERSIONS")


def assume_yes() -> bool:
    """HW3_YES: confirm a slow recompute (bf16 on a CPU without bf16 units) without a terminal."""
    return env_flag("HW3_YES")
