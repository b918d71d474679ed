"""A cache from someone else is safe to open: loading runs no code from it, its text is escaped where
it is shown, its data keys stay in the data folder, and `gc` never deletes outside the cache.

Each test builds the hostile entry in a private cache (conftest), the way an attacker would: a
crafted file with its hash in meta.json recomputed to match, so only the new checks stop it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runner_toy
from hw3 import cli
from hw3.environment import PROJECT_ROOT
from hw3.experiments import gallery, registry
from hw3.report import provenance, runs
from hw3.store import fingerprint, safeload
from hw3.store.cached import META, OUTPUT, CacheMissError

COMMITTED = PROJECT_ROOT / "cache"
reads_committed = pytest.mark.reads_committed_cache  # copies a committed entry (conftest: skipped if that cache is stale)


class _RunsACommand:
    """Unpickling this runs `touch <marker>`: what a hostile output.joblib would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _rehash(folder: Path) -> None:
    """Recompute output_sha256 in meta.json, as whoever crafted the file would."""
    meta = json.loads((folder / META).read_text())
    meta["output_sha256"] = fingerprint.file_sha256(folder / OUTPUT)
    (folder / META).write_text(json.dumps(meta))


def _committed_entry(private_cache: Path, config) -> Path:
    """A copy of a committed entry in the private cache (a registered run, so `results` reads it)."""
    exp = registry.experiment_of(config)
    source = exp.folder(config, COMMITTED)
    if not (source / META).exists():
        pytest.skip(f"cache/ has no entry {source.name}")
    target = exp.folder(config, private_cache)
    shutil.copytree(source, target)
    return target


@pytest.fixture
def hostile_data_check(private_cache, tmp_path) -> tuple[Path, Path]:
    """The data-check entry with an output.joblib that runs a command when unpickled; (folder, marker)."""
    folder = _committed_entry(private_cache, gallery.DATA_CHECK)
    marker = tmp_path / "code-ran"
    (folder / OUTPUT).write_bytes(pickle.dumps({"fashion": _RunsACommand(marker)}, protocol=4))
    _rehash(folder)
    return folder, marker


# ----------------------------------------------------------------------------------------------
# Loading runs no code


@reads_committed
def test_results_does_not_run_code_from_a_hostile_output(hostile_data_check, subprocess_env):
    folder, marker = hostile_data_check
    proc = subprocess.run([sys.executable, "-m", "hw3", "results"], env=subprocess_env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert not marker.exists(), "`results` ran a command from output.joblib"
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("data-check "))
    assert " unreadable " in line, line
    assert "posix.system" in proc.stdout and "the store never writes" in proc.stdout, proc.stdout[-2000:]


@reads_committed
def test_report_runs_do_not_run_code_from_a_hostile_output(hostile_data_check, monkeypatch):
    folder, marker = hostile_data_check
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="data-check") as caught:
        runs.data_check()
    assert not marker.exists(), "hw3.report.runs ran a command from output.joblib"
    assert "\n" not in str(caught.value), "one line"


def test_object_arrays_are_restricted_too(tmp_path):
    """joblib reads an object array as a nested pickle: its find_class must be the restricted one."""
    import joblib
    import numpy as np

    marker = tmp_path / "code-ran"
    values = np.empty(2, dtype=object)
    values[0], values[1] = np.arange(3), _RunsACommand(marker)
    joblib.dump({"a": values}, tmp_path / "x.joblib")
    with pytest.raises(safeload.UnsafePickleError, match="posix.system"):
        safeload.load(tmp_path / "x.joblib")
    assert not marker.exists()


def test_safe_load_reads_what_the_store_writes(tmp_path):
    import joblib
    import numpy as np

    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = np.arange(3.0), "text"
    value = {"a": [1, 2.5, "s", None, True, (1, 2)], "b": np.arange(6, dtype=np.float32).reshape(2, 3),
             "c": np.float64(1.5), "d": objects, "e": {1, 2}, "f": complex(1, 2), "g": np.int64(7)}
    joblib.dump(value, tmp_path / "x.joblib")
    back = safeload.load(tmp_path / "x.joblib")
    assert joblib.hash(back) == joblib.hash(value)


@reads_committed
def test_every_committed_output_loads_with_the_restricted_unpickler():
    outputs = sorted(COMMITTED.glob("*/*/output.joblib"))
    if not outputs:
        pytest.skip("cache/ has no entries")
    for path in outputs:
        safeload.load(path)


# ----------------------------------------------------------------------------------------------
# Text from meta.json is escaped where it is shown


HOSTILE_CPU = '<img src=x onerror="alert(1)">\x1b[2J\x1b]0;owned\x07'


@pytest.fixture
def hostile_machine(private_cache):
    folder = _committed_entry(private_cache, gallery.DATA_CHECK)
    meta = json.loads((folder / META).read_text())
    meta["machine"]["cpu"] = HOSTILE_CPU
    meta["machine"]["device"] = "cpu"
    (folder / META).write_text(json.dumps(meta))
    return folder


@reads_committed
def test_provenance_table_escapes_html_from_meta(hostile_machine):
    table = provenance.provenance_table()
    assert "<img" not in table and "&lt;img" in table, table[-1500:]
    assert "\x1b" not in table
    assert all("<" not in label for label in provenance.machines())


@reads_committed
def test_results_prints_no_raw_terminal_escapes_from_meta(hostile_machine, capsys):
    assert cli.main(["results"]) == 0
    out = capsys.readouterr().out
    assert "another machine" in out, "the hostile CPU name is still reported, escaped"
    assert "\x1b" not in out and "\x07" not in out, "escape codes from meta.json reached the terminal raw"


# ----------------------------------------------------------------------------------------------
# Data keys stay in the data folder


@reads_committed
@pytest.mark.parametrize("key", ["/dev/zero", "/etc/hostname", "../x", "FashionMNIST/../../x"])
def test_a_data_key_outside_the_data_folder_is_refused_without_reading_it(private_cache, key, monkeypatch):
    folder = _committed_entry(private_cache, gallery.DATA_CHECK)
    meta = json.loads((folder / META).read_text())
    meta["data"][key] = "0" * 16
    (folder / META).write_text(json.dumps(meta))
    read = []
    real = fingerprint.file_hash
    monkeypatch.setattr(fingerprint, "file_hash", lambda path: read.append(str(path)) or real(path))
    st = gallery.run_data_check.status(gallery.DATA_CHECK)
    assert st.state == "unreadable" and key in str(st) and "data folder" in str(st), st
    assert not [p for p in read if "dev" in p or "etc" in p or p.endswith("/x")], f"read {read}"


# ----------------------------------------------------------------------------------------------
# gc never leaves the cache, and asks first


def _sentinel(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "precious").mkdir(parents=True)
    (outside / "precious" / "file").write_text("keep me")
    return outside


def test_gc_does_not_follow_a_symlink_out_of_the_cache(private_cache, tmp_path, capsys):
    outside = _sentinel(tmp_path)
    private_cache.mkdir(parents=True)
    (private_cache / "up").symlink_to(outside)
    (private_cache / "fashion").mkdir()
    (private_cache / "fashion" / "linked").symlink_to(outside / "precious")
    assert cli.main(["gc", "--delete", "--yes"]) == 0
    assert (outside / "precious" / "file").read_text() == "keep me", "gc deleted outside the cache"


def test_gc_delete_asks_first_and_needs_yes_without_a_terminal(private_cache, capsys, monkeypatch):
    stray = private_cache / "fashion" / "fashion-an-old-config"
    stray.mkdir(parents=True)
    monkeypatch.setattr("sys.stdin", open(os.devnull))
    monkeypatch.delenv("HW3_YES", raising=False)
    assert cli.main(["gc", "--delete"]) == 2, "no terminal to ask, and no --yes: refused"
    assert stray.exists()
    assert "--yes" in capsys.readouterr().err
    monkeypatch.setenv("HW3_YES", "1")
    assert cli.main(["gc", "--delete"]) == 0
    assert not stray.exists()


def test_gc_delete_asks_at_a_terminal(private_cache, capsys, monkeypatch):
    import io

    stray = private_cache / "fashion" / "fashion-an-old-config"
    stray.mkdir(parents=True)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert cli.main(["gc", "--delete"]) == 1
    assert stray.exists()
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert cli.main(["gc", "--delete"]) == 0
    assert not stray.exists()


def test_toy_entry_loads_through_the_restricted_unpickler(monkeypatch):
    """The ordinary path still works: an honest entry loads (through safeload, not joblib.load)."""
    called = []
    real = safeload.load
    monkeypatch.setattr(safeload, "load", lambda path: called.append(path) or real(path))
    runner_toy.leaf(runner_toy.C)
    assert runner_toy.leaf.load(runner_toy.C)["value"] == 31 and called


def test_names_the_report_prints_from_an_output_must_be_registered_runs():
    """bonus-final's `chosen` is printed in the prose: a received output cannot put markup there."""
    from hw3.report import record

    stored = {"chosen": '<img src=x onerror="alert(1)">', "labels": {"test": []}, "test": [], "predictions": {"test": []},
              "tta": False, "seeds": [], "val_acc": [], "confusion": None, "misclassified": {}}
    with pytest.raises(ValueError, match="not one of the registered runs"):
        record.FinalTest.from_stored(stored)
    with pytest.raises(ValueError, match="not one of the registered runs"):
        record._digit_analysis({**stored, "per_class_acc": {}, "ink_covered": {}, "ink_in_overlap": {}})


@reads_committed
def test_a_data_folder_of_links_is_still_the_users_own(private_cache, tmp_path, monkeypatch):
    """Confinement is of meta.json's keys: links inside the user's data folder are followed as before."""
    from hw3.environment import data_dir

    folder = _committed_entry(private_cache, gallery.DATA_CHECK)
    real = data_dir()
    for rel in json.loads((folder / META).read_text())["data"]:
        if not (real / rel).exists():
            pytest.skip("the data files are not here")
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).symlink_to(real / rel)
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "data"))
    assert gallery.run_data_check.status(gallery.DATA_CHECK).state == "cached"
