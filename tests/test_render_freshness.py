"""A render after a cache change must show it: with one daemon kernel serving all formats of a render
(tools/render_quarto.py, as `make report`), the next render gets a new kernel, so neither imported
code nor anything a process memoised can outlive the render it was loaded for.

A small document reads one entry from a private copy of the committed cache and quotes its number;
it renders (html and ipynb, one kernel), then the entry is made stale (a recorded code hash no
longer matches), and the next render must fail with the entry's name and the reason. No process of
either render may be left running. Needs the real Quarto CLI (skips without it, unless
HW3_REQUIRE_QUARTO=1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from test_rendered_report import MARK, left_running, quarto_or_skip

REPO = Path(__file__).resolve().parents[1]
NAME = "fashion-mlp-sgd-lr0.01"

DOC = f'''---
title: "Freshness"
format:
  html: default
  ipynb: default
---

```{{python}}
import os
os.environ.setdefault("HW3_CACHE_ONLY", "1")
from hw3.experiments import registry
exp, config = registry.by_name()["{NAME}"]
acc = exp.load(config)["final"]["val"]["acc"]
```

The accuracy is `{{python}} f"{{acc:.6f}}"` here.
'''


def _render(folder: Path, env: dict[str, str]) -> tuple[int, str]:
    env = {**env, MARK: uuid.uuid4().hex}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "render_quarto.py"), "doc.qmd"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
    assert left_running(env[MARK]) == [], "a process of the render is still running"
    return proc.returncode, proc.stdout + proc.stderr


def test_a_render_after_the_entry_went_stale_fails_with_the_reason(tmp_path):
    quarto_or_skip()
    import joblib

    cache = tmp_path / "cache"
    entry = cache / "fashion" / NAME
    shutil.copytree(REPO / "cache" / "fashion" / NAME, entry)
    expected = joblib.load(entry / "output.joblib")["final"]["val"]["acc"]
    (tmp_path / "doc").mkdir()
    (tmp_path / "doc" / "doc.qmd").write_text(DOC)
    env = dict(os.environ, HW3_CACHE_DIR=str(cache), HW3_CACHE_ONLY="1", QUARTO_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "code"), os.environ.get("PYTHONPATH")])))

    rc, log = _render(tmp_path / "doc", env)
    assert rc == 0, log[-4000:]
    assert log.count("Starting python3 kernel") == 1, log[-4000:]  # one kernel for both formats
    for out in ("doc.html", "doc.ipynb"):
        assert f"accuracy is {expected:.6f} here" in (tmp_path / "doc" / out).read_text(), out

    meta = json.loads((entry / "meta.json").read_text())
    changed = sorted(meta["code"])[0]
    meta["code"][changed] = "0" * 16
    (entry / "meta.json").write_text(json.dumps(meta))

    rc, log = _render(tmp_path / "doc", env)
    assert rc != 0, "the render succeeded on a stale entry"
    assert f"experiment '{NAME}' is stale" in log and f"{changed.replace(':', '.')} changed" in log, log[-4000:]
