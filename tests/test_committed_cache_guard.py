"""A stale or unreadable committed cache fails the suite once, first, with the store's own line, and
skips the tests that need that cache (tests/conftest.py), instead of failing each of them.

Checked on a damaged copy of the committed cache, in a child pytest (HW3_TEST_COMMITTED_CACHE).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.reads_committed_cache
def test_a_damaged_committed_cache_fails_once_and_skips_what_needs_it(tmp_path, subprocess_env):
    copy = tmp_path / "cache"
    shutil.copytree(REPO / "cache", copy)
    damaged = sorted(copy.glob("fashion/*/output.joblib"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    env = {**subprocess_env, "HW3_TEST_COMMITTED_CACHE": str(copy)}
    env.pop("HW3_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/test_record.py", "-q", "-p", "no:cacheprovider", "-rfs"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    summary = out.strip().splitlines()[-1]
    assert "1 failed" in summary and "skipped" in summary, summary
    assert "FAILED tests/test_record.py::test_the_committed_cache_is_current" in out, out[-3000:]
    message = next(line for line in out.splitlines() if "entries of the committed cache are not current" in line)
    assert f"experiment '{damaged.parent.name}' is unreadable" in message and "python -m hw3 run" in message, message


def test_an_intact_committed_cache_adds_no_check():
    from conftest import committed_cache_problem

    if not list((REPO / "cache").glob("*/*/meta.json")):
        pytest.skip("no committed cache")
    assert committed_cache_problem() is None
