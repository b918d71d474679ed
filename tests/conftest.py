"""Shared test setup: where the datasets are, and a private cache for every test.

* HW3_DATA_DIR: CI sets it (to ../shared/data). When it is unset and <repo>/../shared/data exists,
  it is set here, so `pytest` works the same from a plain checkout beside the shared data.
* Tests marked `needs_data` (or using the `fashion_dir` fixture) are skipped, with the reason,
  only when the FashionMNIST IDX files cannot be found.
* Every test gets its own empty HW3_CACHE_DIR under tmp_path and runs outside cache-only mode, so
  no test ever reads or writes the committed cache/ folder. A test that must read the committed
  cache (e.g. executing the report) opts out with `@pytest.mark.committed_cache`: it then sees the
  repository's cache/ in cache-only mode (HW3_CACHE_ONLY=1), which never trains and never writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

_shared = REPO_ROOT.parent / "shared" / "data"
if not os.environ.get("HW3_DATA_DIR") and _shared.is_dir():
    os.environ["HW3_DATA_DIR"] = str(_shared)


def dataset_folder(name: str = "FashionMNIST") -> Path:
    """<data dir>/<name>/raw as the package sees it (HW3_DATA_DIR or ./data)."""
    from hw3.environment import data_dir

    return data_dir() / name / "raw"


def missing_data_reason(name: str = "FashionMNIST") -> str | None:
    folder = dataset_folder(name)
    missing = [f for f in IDX_FILES if not (folder / f).is_file()]
    if missing:
        return (f"{name} data not found: {missing} missing in {folder} "
                f"(set HW3_DATA_DIR to a folder holding {name}/raw/, e.g. ../shared/data)")
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_data: the test reads the real FashionMNIST IDX files (skipped when absent)")
    config.addinivalue_line("markers", "committed_cache: the test reads the committed cache/ in cache-only mode "
                                       "instead of a private empty cache")


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data") is not None:
        reason = missing_data_reason("FashionMNIST")
        if reason:
            pytest.skip(reason)


@pytest.fixture
def fashion_dir() -> Path:
    """The real FashionMNIST raw folder; skips the test when it is absent."""
    reason = missing_data_reason("FashionMNIST")
    if reason:
        pytest.skip(reason)
    return dataset_folder("FashionMNIST")


@pytest.fixture(autouse=True)
def private_cache(request, tmp_path, monkeypatch) -> Path:
    """A per-test joblib cache (never the committed cache/), in normal (not cache-only) mode."""
    if request.node.get_closest_marker("committed_cache") is not None:
        monkeypatch.delenv("HW3_CACHE_DIR", raising=False)
        monkeypatch.setenv("HW3_CACHE_ONLY", "1")
        from hw3.environment import cache_dir

        return cache_dir()
    cache = tmp_path / "hw3-cache"
    monkeypatch.setenv("HW3_CACHE_DIR", str(cache))
    monkeypatch.delenv("HW3_CACHE_ONLY", raising=False)
    return cache


@pytest.fixture
def subprocess_env(private_cache) -> dict[str, str]:
    """Environment for a child Python that imports `hw3` and the helpers in tests/ (e.g. runner_toy)."""
    env = dict(os.environ)
    paths = [str(TESTS_DIR), str(REPO_ROOT / "code")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env  # HW3_CACHE_DIR / HW3_CACHE_ONLY as private_cache set them


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-tensor tests: a thread pool only adds overhead, and the
    machine is often shared with training jobs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
