"""`python -m hw3 run --scheduler ADDRESS`: the runner on a Dask distributed cluster.

A LocalCluster of two single-threaded worker processes computes the toy graph of
tests/runner_toy.py into a shared cache folder; the results must equal a local run's, every run
must be computed exactly once, and each after what it reads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import joblib
import pytest

distributed = pytest.importorskip("distributed", reason="needs the `dask` extra: pip install -e '.[dask]'")

import runner_toy as toy  # noqa: E402
from hw3.compute import plan, runner  # noqa: E402
from runner_toy import GRAPH  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


def outputs(cache: Path, monkeypatch) -> dict[str, object]:
    """name → stored output of every toy run, read from `cache` (which must hold them all, current)."""
    monkeypatch.setenv("HW3_CACHE_DIR", str(cache))
    return {exp.name(config): exp.load(config) for exp, config in GRAPH}


def test_dask_cluster_computes_the_same_results_as_a_local_run(private_cache, tmp_path, monkeypatch):
    dask_cache, local_cache, log = tmp_path / "dask-cache", tmp_path / "local-cache", tmp_path / "dask-calls.log"
    # The workers inherit the environment they start with: the shared cache, the log and tests/ on the path.
    monkeypatch.setenv("HW3_CACHE_DIR", str(dask_cache))
    monkeypatch.setenv("HW3_RUNNER_TOY_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), str(REPO_ROOT / "code"),
                                                      *filter(None, [os.environ.get("PYTHONPATH")])]))
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        assert runner.run_missing(GRAPH, scheduler=cluster.scheduler_address, device="cpu") == 0
        calls = toy.calls(log)
        assert sorted(n for n, _, _ in calls) == sorted(exp.name(c) for exp, c in GRAPH), (
            f"the cluster computes every missing run exactly once, got {calls}")
        span = {n: (s, e) for n, s, e in calls}
        for exp, config in GRAPH:
            for up, up_config in exp.upstream(config):
                assert span[up.name(up_config)][1] <= span[exp.name(config)][0], (
                    f"on the cluster {exp.name(config)} started before its upstream {up.name(up_config)} finished")
        assert plan.to_compute(GRAPH) == [], "after the cluster run every entry in the shared cache is current"
        log.unlink()
        runner.run_missing(GRAPH, scheduler=cluster.scheduler_address, device="cpu")
        assert toy.calls(log) == [], "a second run on the cluster computes nothing"

    monkeypatch.setenv("HW3_CACHE_DIR", str(local_cache))
    monkeypatch.delenv("HW3_RUNNER_TOY_LOG")
    runner.run_missing(GRAPH, jobs=1, device="cpu")
    on_dask, local = outputs(dask_cache, monkeypatch), outputs(local_cache, monkeypatch)
    assert on_dask == local, "the Dask cluster's results must equal a local run's"
    assert joblib.hash(on_dask) == joblib.hash(local)
    assert on_dask[toy.top.name(toy.TOP)]["value"] == 32, "the top run read both totals (max(11 + 21, 31))"
