"""Every error is one line with exit status 2 (130 for Ctrl-C), checked before planning where it can be,
and one bad entry never stops the listing of the others.

Unreadable files are simulated where the tests run as root (chmod 000 does not stop root): the open
call of the store's hashing raises PermissionError for that one path, as it would for a user.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
from pathlib import Path

import pytest

from hw3 import cli
from hw3.environment import PROJECT_ROOT
from hw3.experiments import gallery, registry
from hw3.store import fingerprint
from hw3.store.cached import META, OUTPUT

COMMITTED = PROJECT_ROOT / "cache"


def one_line(capsys, argv: list[str], status: int = 2) -> str:
    assert cli.main(argv) == status, f"{argv} should exit with {status}"
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and err.startswith(("error: ", "interrupted")), err
    return err


@pytest.fixture
def data_check_entry(private_cache) -> Path:
    exp, config = gallery.run_data_check, gallery.DATA_CHECK
    source = exp.folder(config, COMMITTED)
    if not (source / META).exists():
        pytest.skip("cache/ has no data-check entry")
    target = exp.folder(config, private_cache)
    shutil.copytree(source, target)
    return target


def _unreadable(monkeypatch, path: Path) -> None:
    """`open(path)` in the fingerprint module raises PermissionError, as after chmod 000 for a non-root user."""
    real = builtins.open

    def guarded(file, *args, **kwargs):
        if Path(file).resolve() == path.resolve():
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(fingerprint, "open", guarded, raising=False)
    fingerprint._file_hash.cache_clear()
    fingerprint._file_sha256.cache_clear()


def _row(out: str, name: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
    return [lines[start]] + [line for line in lines[start + 1:] if line.startswith("    ")][:3]


@pytest.mark.reads_committed_cache
def test_an_unreadable_data_file_is_one_row_not_a_crash(data_check_entry, monkeypatch, capsys):
    from hw3.environment import data_dir

    meta = json.loads((data_check_entry / META).read_text())
    target = data_dir() / sorted(meta["data"])[0]
    if not target.exists():
        pytest.skip("the data files are not here")
    _unreadable(monkeypatch, target)
    assert cli.main(["results"]) == 0
    row = _row(capsys.readouterr().out, "data-check")
    assert " stale " in row[0] and "cannot be read (Permission denied)" in " ".join(row), row


@pytest.mark.reads_committed_cache
def test_an_unreadable_output_is_one_row_not_a_crash(data_check_entry, monkeypatch, capsys):
    _unreadable(monkeypatch, data_check_entry / OUTPUT)
    assert cli.main(["results"]) == 0
    row = _row(capsys.readouterr().out, "data-check")
    assert " unreadable " in row[0] and "cannot be read (Permission denied)" in " ".join(row), row


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.reads_committed_cache
def test_chmod_000_output_is_one_row(data_check_entry, capsys):
    (data_check_entry / OUTPUT).chmod(0)
    try:
        assert cli.main(["results"]) == 0
        assert " unreadable " in _row(capsys.readouterr().out, "data-check")[0]
    finally:
        (data_check_entry / OUTPUT).chmod(0o644)


@pytest.mark.reads_committed_cache
def test_a_900_deep_meta_json_is_one_row(data_check_entry, capsys):
    meta = json.loads((data_check_entry / META).read_text())
    meta["config"] = json.loads("[" * 900 + "]" * 900)
    (data_check_entry / META).write_text(json.dumps(meta))
    assert cli.main(["results"]) == 0
    captured = capsys.readouterr()
    row = _row(captured.out, "data-check")
    assert " unreadable " in row[0] and "nested more than" in " ".join(row), row
    assert "Traceback" not in captured.err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "status_rows", interrupted)
    err = one_line(capsys, ["results"], status=130)
    assert "interrupted" in err


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HW3_CACHE_DIR", str(blocker))
    for command in (["results"], ["gc"], ["gc", "--delete", "--yes"], ["run", "--dry-run"]):
        err = one_line(capsys, command)
        assert "is not a folder" in err and "HW3_CACHE_DIR" in err, (command, err)


@pytest.fixture
def no_planning(monkeypatch):
    """Planning or calibrating fails the test: options must be rejected before either."""
    def planned(*args, **kwargs):
        raise AssertionError("planned before the options were checked")

    monkeypatch.setattr("hw3.compute.plan.to_compute", planned)
    monkeypatch.setattr("hw3.compute.estimate.calibrate", planned)


@pytest.mark.parametrize("argv, env, expected", [
    (["run", "--device", "tpu"], {}, "--device must be"),
    (["run", "--jobs", "0"], {}, "--jobs must be at least 1"),
    (["run", "--threads", "0"], {}, "--threads must be at least 1"),
    (["run"], {"HW3_YES": "maybe"}, "HW3_YES='maybe' is not an on/off value"),
    (["run"], {"HW3_STRICT_VERSIONS": "2"}, "is not an on/off value"),
])
def test_bad_options_are_rejected_before_planning(no_planning, monkeypatch, capsys, argv, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert expected in one_line(capsys, argv)


def test_an_oserror_reaching_the_command_line_is_one_line(monkeypatch, capsys):
    def broken():
        raise OSError(39, "Directory not empty", "/somewhere/.x.old")

    monkeypatch.setattr(cli, "status_rows", broken)
    err = one_line(capsys, ["results"])
    assert "Directory not empty" in err and "/somewhere/.x.old" in err


def test_one_line_errors_keep_escape_codes_out_of_the_terminal(monkeypatch, capsys):
    monkeypatch.setattr(registry, "lookup", lambda name: (_ for _ in ()).throw(KeyError(f"no experiment named {name}")))
    err = one_line(capsys, ["run", "x\x1b[2Jy"])
    assert "\x1b" not in err and "\\x1b" in err
