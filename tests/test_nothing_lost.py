"""Nothing computed is lost: not to a full disk, not to another run's failure, not to a name collision,
not to a concurrent writer, not to an interrupted swap; and a bit-identical recompute rewrites the
same bytes.

Toys only (tests/runner_toy.py, in a private cache): nothing here trains.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
from dataclasses import replace
from pathlib import Path

import joblib
import pytest

import runner_toy as toy
from hw3 import cli
from hw3.compute import plan, runner
from hw3.experiments import bonus, registry
from hw3.store import cached, swap
from hw3.store.cached import StoreError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy_workers(private_cache, tmp_path, monkeypatch) -> Path:
    """tests/ on the workers' PYTHONPATH and a call log; fresh loky workers before and after."""
    from test_runner import shutdown_loky_workers

    log = tmp_path / "calls.log"
    monkeypatch.setenv("HW3_RUNNER_TOY_LOG", str(log))
    paths = [str(REPO_ROOT / "tests"), str(REPO_ROOT / "code"), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    shutdown_loky_workers()
    yield log
    shutdown_loky_workers()


# ----------------------------------------------------------------------------------------------
# A full disk


def test_too_little_free_space_fails_before_computing(private_cache, monkeypatch):
    calls = []
    monkeypatch.setattr(toy.timed, "func", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(StoreError, match="MiB free.*nothing was computed"):
        toy.timed.compute(toy.TimedConfig())
    assert calls == [], "nothing may be computed when there is no room to write it"


def _full_disk_in(folder: Path, monkeypatch) -> None:
    """joblib.dump raises ENOSPC for any file under `folder`, as on a full disk; elsewhere it writes."""
    real = joblib.dump

    def dump(value, filename, *args, **kwargs):
        if Path(filename).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))
        return real(value, filename, *args, **kwargs)

    monkeypatch.setattr(joblib, "dump", dump)


def test_a_result_that_cannot_be_written_is_kept_and_the_message_says_where(private_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    private_cache.mkdir(parents=True)
    _full_disk_in(private_cache, monkeypatch)
    config = toy.TimedConfig(3)
    with pytest.raises(StoreError) as caught:
        toy.timed.compute(config)
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "kept in" in message, message
    kept = Path(message.split("kept in ")[1].split(":")[0])
    assert kept.is_relative_to(tmp_path / "tmp") and (kept / cached.OUTPUT).exists(), message
    monkeypatch.undo()  # the disk has room again, and the rescued entry moves into place as it is
    monkeypatch.setenv("HW3_CACHE_DIR", str(private_cache))
    toy.timed.folder(config).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(kept, toy.timed.folder(config))
    assert toy.timed.status(config).state == "cached"
    assert toy.timed.load(config)["weights"][1, 2] == 15


def test_the_runner_says_in_one_line_where_an_unwritable_result_was_kept(private_cache, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    private_cache.mkdir(parents=True)
    _full_disk_in(private_cache, monkeypatch)
    assert runner.run_missing([(toy.timed, toy.TimedConfig(4))], jobs=1, device="cpu") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "kept in" in err, err
    line = next(line for line in err.splitlines() if "kept in" in line)
    assert line.startswith("error: toy-timed") and "No space left on device" in line, line


# ----------------------------------------------------------------------------------------------
# One failing run


def test_one_failing_run_lets_the_others_in_flight_finish_and_be_written(toy_workers, capsys):
    slow = toy.LeafConfig(7, sleep=1.0)
    reads_broken = toy.TotalConfig((toy.LeafConfig(8),))
    runs = [(toy.broken, toy.BrokenConfig()), (toy.leaf, slow), (toy.total, reads_broken)]
    assert runner.run_missing(runs, jobs=2, device="cpu") == 2
    assert toy.leaf.status(slow).state == "cached", "the run in flight beside the failing one was written"
    assert toy.total.status(reads_broken).state == "cached"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: toy-broken: DataError: FashionMNIST/raw/train-images-idx3-ubyte is missing" in err, err


def test_a_run_that_reads_a_failed_run_is_skipped_not_computed(toy_workers, capsys, monkeypatch):
    @cached.experiment("toy-reads-broken", depends=lambda config: [(toy.broken, toy.BrokenConfig())])
    def reads_broken(config, settings, upstream):
        raise AssertionError("must not run")

    runs = [(toy.broken, toy.BrokenConfig()), (reads_broken, toy.TimedConfig())]
    assert runner._run_locally(plan.to_compute(runs), jobs=1, device="cpu") == [
        ("toy-broken", None, "DataError: FashionMNIST/raw/train-images-idx3-ubyte is missing"),
        ("toy-reads-broken", None, "skipped: it reads toy-broken, which failed")]


# ----------------------------------------------------------------------------------------------
# Colliding names


def test_colliding_entry_names_fail_at_registration(monkeypatch, capsys):
    a, b = bonus.BonusConfig(label="x-lr0.1"), bonus.BonusConfig(label="x", lr=0.1)
    assert bonus.run_bonus.name(a) == bonus.run_bonus.name(b) and a != b, "the two names collide"
    monkeypatch.setattr(bonus, "RUNS", [*bonus.RUNS, a, b])
    with pytest.raises(ValueError, match="both named 'bonus-x-lr0.1'"):
        registry.all_experiments()
    assert cli.main(["results"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bonus-x-lr0.1" in err, err


def test_colliding_entry_names_fail_at_plan_time():
    a, b = toy.LeafConfig(1), replace(toy.LeafConfig(1), x=1, model="cnn")
    collide = cached.experiment("toy-leaf")(toy.leaf.func)  # same prefix, and a name that ignores the model
    collide.name = lambda config: "toy-leaf-x1"  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="both named"):
        plan.to_compute([(toy.leaf, a), (collide, b)])


# ----------------------------------------------------------------------------------------------
# Concurrent writers and readers


def _write_many(times: int) -> list[str]:
    errors = []
    for _ in range(times):
        try:
            toy.leaf.compute(toy.LeafConfig(5))
        except Exception as exc:  # noqa: BLE001 - collected, the test says which
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


def _read_many(times: int) -> list[str]:
    seen = []
    for _ in range(times):
        cached._STATUS_MEMO.clear()
        st = toy.leaf.status(toy.LeafConfig(5))
        if st.state != "cached":
            seen.append(f"{st.state}: {st}")
        else:
            try:
                toy.leaf.load(toy.LeafConfig(5))
            except Exception as exc:  # noqa: BLE001
                seen.append(f"load: {type(exc).__name__}: {exc}")
    return seen


def test_concurrent_writers_and_readers_never_see_a_healthy_entry_as_damaged(private_cache):
    toy.leaf.compute(toy.LeafConfig(5))
    context = multiprocessing.get_context("fork")
    with context.Pool(5) as pool:
        writers = [pool.apply_async(_write_many, (60,)) for _ in range(3)]
        readers = [pool.apply_async(_read_many, (400,)) for _ in range(2)]
        errors = [e for w in writers for e in w.get(timeout=600)]
        seen = [s for r in readers for s in r.get(timeout=600)]
    assert errors == [], f"{len(errors)} of 180 concurrent writes failed: {errors[:3]}"
    assert seen == [], f"readers saw a healthy entry as damaged {len(seen)} times: {seen[:3]}"
    assert toy.leaf.status(toy.LeafConfig(5)).state == "cached"
    assert not list(toy.leaf.folder(toy.LeafConfig(5)).parent.glob(".*")), "no temporary folder left behind"


# ----------------------------------------------------------------------------------------------
# An interrupted swap is restored, not recomputed


@pytest.mark.parametrize("new_is_complete", [False, True])
def test_an_interrupted_swap_is_restored_not_recomputed(toy_workers, new_is_complete):
    config = toy.LeafConfig(6)
    runner.run_missing([(toy.leaf, config)], jobs=1, device="cpu")
    folder = toy.leaf.folder(config)
    toy_workers.unlink()
    # Killed between the swap's two renames: the old entry is `.old`, the new one a temporary folder.
    tmp = folder.with_name(f".{folder.name}.ab12cd34")
    shutil.copytree(folder, tmp)
    folder.rename(folder.with_name(f".{folder.name}.old"))
    if not new_is_complete:
        (tmp / cached.META).unlink()  # meta.json is written last: the new one was not finished
    st = toy.leaf.status(config)
    assert st.state == "missing" and "puts it back without recomputing" in str(st), st
    assert runner.run_missing([(toy.leaf, config)], jobs=1, device="cpu") == 0
    assert toy.leaf.status(config).state == "cached"
    assert toy.calls(toy_workers) == [], "restored, not recomputed"
    assert (tmp.exists()) != new_is_complete, "the complete new entry is the one put back; else the old one"


def test_run_restores_an_interrupted_swap_before_planning(private_cache, monkeypatch, capsys):
    config = toy.LeafConfig(9)
    toy.leaf.compute(config)
    folder = toy.leaf.folder(config)
    folder.rename(folder.with_name(f".{folder.name}.old"))
    monkeypatch.setattr(registry, "lookup", lambda name: (toy.leaf, config))
    monkeypatch.setattr("hw3.compute.estimate.calibrate", lambda *a, **k: {"fp32": 1.0, "cpu": "x", "threads": 1, "bf16_units": "x"})
    assert cli.main(["run", "toy-leaf-x9", "--device", "cpu"]) == 0
    assert "nothing to compute" in capsys.readouterr().out
    assert folder.exists() and toy.leaf.status(config).state == "cached"


# ----------------------------------------------------------------------------------------------
# A bit-identical recompute leaves output.joblib byte-identical


def test_a_forced_recompute_twice_gives_byte_identical_outputs(toy_workers):
    config = toy.TimedConfig(2)
    outputs, metas = [], []
    for _ in range(2):
        assert runner.run_missing([(toy.timed, config)], jobs=1, device="cpu", force=True) == 0
        outputs.append((toy.timed.folder(config) / cached.OUTPUT).read_bytes())
        metas.append(json.loads((toy.timed.folder(config) / cached.META).read_text()))
    assert outputs[0] == outputs[1], "the wall time must not be inside output.joblib"
    assert metas[0]["train_time_s"] != metas[1]["train_time_s"], "the toy's wall times differ: the test can fail"
    assert metas[0]["threads"] == 1 and "wall_time_s" not in toy.timed.load(config)["meta"]


def test_the_report_reads_the_wall_time_and_threads_from_meta_json(private_cache):
    from hw3.report import record

    config = toy.TimedConfig(3)
    toy.timed.compute(config)
    meta = toy.timed.read_meta(config)
    stored = toy.timed.load(config)
    assert record.Meta.of(stored, meta) == record.Meta(meta["train_time_s"], "cpu", 6, 1)


def test_swap_leftovers_never_match_another_entrys_temporaries(tmp_path):
    parent = tmp_path / "p"
    (parent / ".fashion-lr0.1.abcd1234").mkdir(parents=True)
    (parent / ".fashion-lr0.old").mkdir()
    assert swap.leftovers(parent / "fashion-lr0") == [parent / ".fashion-lr0.old"]
