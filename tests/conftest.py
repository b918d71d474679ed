"""Shared test setup: where the datasets are, and a private cache for every test.

* HW3_DATA_DIR: CI sets it (to ../shared/data). When it is unset and <repo>/../shared/data exists,
  it is set here, so `pytest` works the same from a plain checkout beside the shared data.
* Tests marked `needs_data` (or using the `fashion_dir` fixture) are skipped, with the reason,
  only when the FashionMNIST IDX files cannot be found.
* Every test gets its own empty HW3_CACHE_DIR under tmp_path and runs outside cache-only mode, so
  no test ever reads or writes the committed cache/ folder. A test that must read the committed
  cache (e.g. executing the report) opts out with `@pytest.mark.committed_cache`: it then sees the
  repository's cache/ in cache-only mode (HW3_CACHE_ONLY=1), which never trains and never writes.
* A stale or unreadable committed cache fails the run once, first, with the store's own one-line
  message (`test_the_committed_cache_is_current`), and skips every test that needs that cache
  (marked `committed_cache` or `reads_committed_cache`, or rendering the report), instead of
  failing each of them. HW3_TEST_COMMITTED_CACHE points the tests at another copy (to test this).
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
    config.addinivalue_line("markers", "reads_committed_cache: the test copies or renders from the committed cache/ "
                                       "(skipped, after one failure, when that cache is not current)")


def committed_cache() -> Path:
    return Path(os.environ.get("HW3_TEST_COMMITTED_CACHE") or REPO_ROOT / "cache")


def _needs_committed_cache(item) -> bool:
    return (item.get_closest_marker("committed_cache") is not None
            or item.get_closest_marker("reads_committed_cache") is not None
            or "rendered" in getattr(item, "fixturenames", ()))  # tests/test_rendered_report.py renders from it


def committed_cache_problem() -> str | None:
    """The store's own line for the first registered entry of the committed cache that is not current, or None."""
    saved = {k: os.environ.get(k) for k in ("HW3_CACHE_DIR", "HW3_CACHE_ONLY")}
    os.environ.update(HW3_CACHE_DIR=str(committed_cache()), HW3_CACHE_ONLY="1")
    try:
        from hw3.experiments import registry
        from hw3.store.cached import CacheMissError

        runs = registry.all_experiments()
        bad = [(exp, config) for exp, config in runs if exp.status(config).state != "cached"]
        if not bad:
            return None
        try:
            bad[0][0].load(bad[0][1])
            first = f"{bad[0][0].name(bad[0][1])} is {bad[0][0].status(bad[0][1]).state}"
        except CacheMissError as exc:
            first = str(exc)
        return f"{len(bad)} of {len(runs)} entries of the committed cache are not current; the first: {first}"
    except Exception as exc:  # noqa: BLE001 - whatever stops the check is what the one failure says
        return f"the committed cache cannot be checked: {type(exc).__name__}: {exc}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pytest_collection_modifyitems(session, config, items):
    needing = [item for item in items if _needs_committed_cache(item)]
    if not needing:
        return
    problem = committed_cache_problem()
    if problem is None:
        return
    for item in needing:
        item.add_marker(pytest.mark.skip(reason="the committed cache is not current: see test_the_committed_cache_is_current"))

    def test_the_committed_cache_is_current():
        pytest.fail(problem, pytrace=False)

    check = pytest.Function.from_parent(needing[0].getparent(pytest.Module), name="test_the_committed_cache_is_current",
                                        callobj=test_the_committed_cache_is_current)
    items.insert(0, check)


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
        if os.environ.get("HW3_TEST_COMMITTED_CACHE"):
            monkeypatch.setenv("HW3_CACHE_DIR", os.environ["HW3_TEST_COMMITTED_CACHE"])
        else:
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
