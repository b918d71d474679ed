"""hw3.compute.runner: what it computes (to_compute), in which order (levels), and that it computes it.

The experiments are the toys of tests/runner_toy.py (trivial bodies, no training). The planning
functions are checked in this process; `run_missing` runs them in loky worker processes (a level
of a single run runs in this process: joblib's n_jobs=1), which import runner_toy through
PYTHONPATH and log each computed call with its start and end times.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import runner_toy as toy
from hw3.store import fingerprint
from hw3.compute import plan, runner
from hw3.store.cached import Status
from runner_toy import AB, CC, GRAPH, TOP, A, B, C, leaf, top, total

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


def names(runs) -> list[str]:
    return [exp.name(config) for exp, config in runs]


def name(exp, config) -> str:
    return exp.name(config)


def shutdown_loky_workers() -> None:
    """joblib reuses its loky workers across calls; they keep the environment they started with
    (HW3_CACHE_DIR, PYTHONPATH, the toy log), so each test starts and ends without any."""
    from joblib.externals.loky import reusable_executor

    if reusable_executor._executor is not None:
        reusable_executor._executor.shutdown(wait=True)


@pytest.fixture
def toy_log(private_cache, tmp_path, monkeypatch) -> Path:
    """A private cache (conftest), a call log, and tests/ on the workers' PYTHONPATH; fresh workers."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("HW3_RUNNER_TOY_LOG", str(log))
    paths = [str(TESTS_DIR), str(REPO_ROOT / "code"), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    shutdown_loky_workers()
    yield log
    shutdown_loky_workers()


def compute_all_in_process() -> None:
    top(TOP)  # computes every missing upstream first


def logged(log: Path) -> list[str]:
    return [n for n, _, _ in toy.calls(log)]


# ----------------------------------------------------------------------------------------------
# Planning: to_compute and levels (in this process)


def assert_dependency_order(runs) -> None:
    order = names(runs)
    for exp, config in runs:
        for up_exp, up_config in exp.upstream(config):
            if up_exp.name(up_config) in order:
                assert order.index(up_exp.name(up_config)) < order.index(exp.name(config)), (
                    f"upstream {up_exp.name(up_config)} must come before {exp.name(config)} in {order}")


def test_to_compute_on_an_empty_cache_is_everything_in_dependency_order(toy_log):
    todo = plan.to_compute(GRAPH)
    assert sorted(names(todo)) == sorted(names(GRAPH)), "every missing run must be computed"
    assert len(set(names(todo))) == len(todo), "no run may be scheduled twice"
    assert_dependency_order(todo)


def test_to_compute_adds_missing_upstream_runs_that_were_not_asked_for(toy_log):
    todo = plan.to_compute([(top, TOP)])
    assert sorted(names(todo)) == sorted(names(GRAPH)), "asking for the top run must schedule its missing upstream too"
    assert names(todo)[-1] == name(top, TOP), "the asked run comes after everything it reads"
    assert_dependency_order(todo)


def test_levels_put_each_run_after_everything_it_reads_longest_first(toy_log, monkeypatch):
    monkeypatch.setattr(plan, "_EPOCH_COST", {(leaf.prefix, "cnn"): 11.0, (leaf.prefix, None): 1.0})
    lv = plan.levels(plan.to_compute(GRAPH))
    assert [sorted(names(level)) for level in lv] == [
        sorted([name(leaf, A), name(leaf, B), name(leaf, C)]),
        sorted([name(total, AB), name(total, CC)]),
        [name(top, TOP)],
    ], "levels: leaves, then the totals that read them, then the top run"
    assert names(lv[0])[0] == name(leaf, B), "within a level the most expensive run (B, a 'cnn') starts first"


def test_levels_of_a_partial_plan_ignore_upstream_runs_not_in_it(toy_log):
    compute_all_in_process()
    shutil.rmtree(total.folder(CC))
    lv = plan.levels(plan.to_compute(GRAPH))
    assert [names(level) for level in lv] == [[name(total, CC)], [name(top, TOP)]], (
        "a run whose upstream is all cached belongs to the first level")


def test_to_compute_is_empty_when_everything_is_current(toy_log, capsys):
    compute_all_in_process()
    assert len(logged(toy_log)) == 6, "the in-process computation ran each body once"
    assert plan.to_compute(GRAPH) == [], "nothing to compute when every entry is current"
    assert runner.run_missing(GRAPH, jobs=1) == 0
    assert "nothing to compute" in capsys.readouterr().out
    assert len(logged(toy_log)) == 6, "run_missing on a current cache must not compute anything"


def test_to_compute_picks_the_missing_run_and_what_reads_it(toy_log):
    compute_all_in_process()
    shutil.rmtree(leaf.folder(C))
    assert names(plan.to_compute(GRAPH)) == [name(leaf, C), name(total, CC), name(top, TOP)], (
        "a missing leaf is recomputed with the runs downstream of it, and nothing else")


def test_to_compute_picks_runs_made_stale_by_a_changed_constant(toy_log):
    compute_all_in_process()
    # The fingerprint memo is keyed by the source files' mtimes (a constant changes by editing its file),
    # so a constant changed in memory needs the memo cleared, before and after (this process runs
    # experiments too: joblib runs a one-job level in the calling process).
    salt = toy.SALT
    toy.SALT = 2
    fingerprint._closure.cache_clear()
    try:
        status = leaf.status(A)
        assert status.state == "stale" and any("SALT" in r for r in status.reasons), f"SALT is read by leaf: {status}"
        assert sorted(names(plan.to_compute(GRAPH))) == sorted(names(GRAPH)), "every leaf is stale, so everything downstream too"
    finally:
        toy.SALT = salt
        fingerprint._closure.cache_clear()
    assert plan.to_compute(GRAPH) == [], "with SALT back to its value every entry is current again"


def test_runs_downstream_of_a_recomputed_run_are_recomputed_even_if_their_status_says_cached(toy_log, monkeypatch):
    compute_all_in_process()
    monkeypatch.setattr(leaf, "status", lambda config: Status("stale", ["test"]) if config == A else Status("cached"))
    monkeypatch.setattr(total, "status", lambda config: Status("cached"))
    monkeypatch.setattr(top, "status", lambda config: Status("cached"))
    assert names(plan.to_compute(GRAPH)) == [name(leaf, A), name(total, AB), name(top, TOP)], (
        "what reads a recomputed run must be recomputed after it")


def test_force_recomputes_exactly_the_named_runs_and_their_listed_downstream(toy_log):
    compute_all_in_process()
    assert names(plan.to_compute([(leaf, A)], force=True)) == [name(leaf, A)], (
        "force recomputes the named cached run, and not the runs it was not asked for")
    assert names(plan.to_compute([(total, AB)], force=True)) == [name(total, AB)], (
        "force on a downstream run does not recompute its cached upstream")
    assert names(plan.to_compute([(leaf, A), (top, TOP)], force=True)) == [name(leaf, A), name(total, AB), name(top, TOP)], (
        "the total between a forced leaf and a forced top reads the recomputed leaf, so it is recomputed too")
    assert plan.to_compute([(leaf, A)], force=False) == [], "without force a current run is left alone"


# ----------------------------------------------------------------------------------------------
# Running: run_missing in loky worker processes


def test_run_missing_computes_in_dependency_order_and_then_only_what_is_missing_or_forced(toy_log, capsys):
    assert runner.run_missing(GRAPH, jobs=2, device="cpu") == 0
    calls = toy.calls(toy_log)
    assert sorted(n for n, _, _ in calls) == sorted(names(GRAPH)), f"each run computed exactly once, got {calls}"
    span = {n: (s, e) for n, s, e in calls}
    for exp, config in GRAPH:
        for up_exp, up_config in exp.upstream(config):
            assert span[up_exp.name(up_config)][1] <= span[exp.name(config)][0], (
                f"{exp.name(config)} started before its upstream {up_exp.name(up_config)} finished")
    assert all(exp.status(config).state == "cached" for exp, config in GRAPH), "the workers wrote every entry"
    top_result = top.load(TOP)
    assert top_result["value"] == max(10 * 1 + 1 + 10 * 2 + 1, 10 * 3 + 1), f"the top run read its totals: {top_result}"
    out = capsys.readouterr().out
    assert all(n in out for n in names(GRAPH)), "the wall-time summary names every computed run"

    shutil.rmtree(leaf.folder(C))
    toy_log.unlink()
    runner.run_missing(GRAPH, jobs=2, device="cpu")
    assert sorted(logged(toy_log)) == sorted([name(leaf, C), name(total, CC), name(top, TOP)]), (
        "a second run computes only the missing leaf and what reads it")

    toy_log.unlink()
    before = leaf.read_meta(A)["finished_at"], (leaf.folder(A) / "meta.json").stat().st_mtime_ns
    runner.run_missing([(leaf, A)], jobs=1, device="cpu", force=True)
    assert logged(toy_log) == [name(leaf, A)], "force recomputes the named run even though it is cached, and only it"
    assert (leaf.folder(A) / "meta.json").stat().st_mtime_ns != before[1], "the forced run rewrote its entry"
