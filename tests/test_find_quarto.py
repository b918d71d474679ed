"""`make report` renders with Quarto only: how it finds Quarto, and the one line it stops with when
there is none and none can be installed (no internet)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import find_quarto

REPO = Path(__file__).resolve().parents[1]


def _without_quarto_path() -> str:
    """PATH with every folder that holds a `quarto` removed."""
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not (Path(d) / "quarto").exists())


def _fake_quarto(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "quarto"
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


def test_quarto_env_variable_comes_before_path(tmp_path):
    on_path = _fake_quarto(tmp_path / "bin", "1.7.34")
    chosen = _fake_quarto(tmp_path / "elsewhere", "1.7.34")
    assert find_quarto.locate({"PATH": str(on_path.parent), "QUARTO": str(chosen)}) == chosen.resolve()
    assert find_quarto.locate({"PATH": str(on_path.parent)}) == on_path.resolve()


def test_an_untested_version_is_used_with_a_one_line_warning(tmp_path):
    fake = _fake_quarto(tmp_path / "bin", "1.9.1")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "find_quarto.py"), "--no-install"],
                          env={**os.environ, "QUARTO": str(fake)}, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == str(fake.resolve())
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "1.9.1" in warnings[0] and find_quarto.TESTED in warnings[0]


def test_make_report_without_quarto_or_internet_stops_with_one_line_naming_the_ways_to_get_it():
    if find_quarto._installed_in_env() is not None:
        pytest.skip("quarto-cli is installed in this environment, so `make report` would find it")
    env = {k: v for k, v in os.environ.items() if k not in {"QUARTO", "MAKEFLAGS", "MFLAGS"}}
    env.update(PATH=_without_quarto_path(), PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_FIND_LINKS="",
               PIP_EXTRA_INDEX_URL="", PIP_NO_CACHE_DIR="1")
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "report"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    trying = [line for line in lines if line.startswith("find_quarto: trying pip install")]
    assert len(trying) == 1, lines  # the one progress line, printed before pip runs
    (error,) = [line for line in lines if line not in trying]  # and then exactly one line
    assert "no Quarto found" in error
    for way in ("quarto.org", "pip install quarto-cli==1.7.34", "../shared/tools/quarto/install"):
        assert way in error
