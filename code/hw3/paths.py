"""Where the project keeps its data and its cache; each is overridable by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

FINGERPRINT_EXEMPT = True  # locations do not change results (see hw3.fingerprint.closure)

# code/hw3/paths.py → the repository root (the package is installed editable, so this is the checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Root of the torchvision dataset layout (<root>/FashionMNIST/raw/...): $HW3_DATA_DIR or ./data."""
    return Path(os.environ.get("HW3_DATA_DIR") or PROJECT_ROOT / "data").expanduser().resolve()


def cache_dir() -> Path:
    """Root of the joblib cache: $HW3_CACHE_DIR or ./cache (committed)."""
    return Path(os.environ.get("HW3_CACHE_DIR") or PROJECT_ROOT / "cache").expanduser().resolve()
