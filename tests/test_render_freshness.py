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
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from test_rendered_report import MARK, left_running, quarto_or_skip

pytestmark = pytest.mark.reads_committed_cache  # copies a committed entry (conftest)

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


def _names_change(recorded: str, log: str) -> bool:
    """The reason names the changed binding: as recorded ('hw3.data:DATASETS'), or under the module
    path it has now (the store maps recorded names of moved modules: 'hw3.nn.data.DATASETS')."""
    module, _, attr = recorded.rpartition(":")
    last = module.rsplit(".", 1)[-1]
    return re.search(rf"hw3(\.\w+)*\.{re.escape(last)}\.{re.escape(attr)} changed", log) is not None


def _render(folder: Path, env: dict[str, str]) -> tuple[int, str]:
    env = {MARK: uuid.uuid4().hex, **env}  # a mark the caller fixed is kept (it is one of the inputs a freeze is keyed on)
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
    assert f"experiment '{NAME}' is stale" in log and _names_change(changed, log), log[-4000:]


# ------------------------------------------------------------------------------------------------
# The guarded freeze: a document of a project reuses its stored execution only while nothing it reads changed.

PROJECT_DOC = DOC.replace('''format:
  html: default
  ipynb: default
---
''', '''format:
  html: default
  ipynb: default
---

```{python}
import helper
from hw3.report import prose
marker = getattr(prose, "MARKER", "none")
```

Helper `{python} helper.LABEL`, marker `{python} marker`.
''')


def _kernels(log: str) -> int:
    return log.count("Starting python3 kernel")


def test_a_reused_execution_is_refused_once_code_or_cache_changed(tmp_path):
    """Render (executes), render (reuses, no kernel), change a helper beside the document, change the
    hw3 package, make the entry stale, corrupt its output, overwrite the freeze with a plain Quarto
    render: each time the next render executes again, and shows the change or fails with the reason."""
    quarto = quarto_or_skip()
    import joblib

    cache = tmp_path / "cache"
    entry = cache / "fashion" / NAME
    shutil.copytree(REPO / "cache" / "fashion" / NAME, entry)
    expected = joblib.load(entry / "output.joblib")["final"]["val"]["acc"]
    shutil.copytree(REPO / "code" / "hw3", tmp_path / "code" / "hw3", ignore=shutil.ignore_patterns("__pycache__"))
    doc = tmp_path / "doc"
    doc.mkdir()
    (doc / "_quarto.yml").write_text("project:\n  type: default\nexecute:\n  freeze: false\n  daemon: false\n")
    (doc / "doc.qmd").write_text(PROJECT_DOC)
    (doc / "helper.py").write_text('LABEL = "first"\n')
    env = dict(os.environ, HW3_CACHE_DIR=str(cache), HW3_CACHE_ONLY="1", QUARTO_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path / "code"), os.environ.get("PYTHONPATH")])))
    env[MARK] = uuid.uuid4().hex  # one mark for this test's renders: an HW3_* variable is part of the freeze's key

    def shows(helper: str, marker: str) -> None:
        for out in ("doc.html", "doc.ipynb"):
            text = (doc / out).read_text()
            assert f"accuracy is {expected:.6f} here" in text and f"Helper {helper}, marker {marker}." in text, out

    rc, log = _render(doc, env)
    assert rc == 0 and _kernels(log) == 1 and "no stored execution" in log, log[-4000:]
    shows("first", "none")

    rc, log = _render(doc, env)
    assert rc == 0 and _kernels(log) == 0 and "stored execution is reused" in log, log[-4000:]
    shows("first", "none")

    (doc / "helper.py").write_text('LABEL = "second"\n')
    rc, log = _render(doc, env)
    assert rc == 0 and _kernels(log) == 1 and "inputs changed" in log, log[-4000:]
    shows("second", "none")

    with open(tmp_path / "code" / "hw3" / "report" / "prose.py", "a") as f:
        f.write('\nMARKER = "edited"\n')
    rc, log = _render(doc, env)
    assert rc == 0 and _kernels(log) == 1, log[-4000:]
    shows("second", "edited")

    meta_file = entry / "meta.json"
    original_meta = meta_file.read_text()
    meta = json.loads(original_meta)
    changed = sorted(meta["code"])[0]
    meta["code"][changed] = "0" * 16
    meta_file.write_text(json.dumps(meta))
    rc, log = _render(doc, env)
    assert rc != 0, "the render reused an execution after the entry went stale"
    assert f"experiment '{NAME}' is stale" in log and _names_change(changed, log), log[-4000:]
    rc, log = _render(doc, env)  # a failed render leaves nothing to reuse
    assert rc != 0 and _kernels(log) == 1, log[-4000:]

    meta_file.write_text(original_meta)
    rc, log = _render(doc, env)
    assert rc == 0 and _kernels(log) == 1, log[-4000:]
    output = entry / "output.joblib"
    output.write_bytes(output.read_bytes()[:-16])  # truncated
    rc, log = _render(doc, env)
    assert rc != 0 and NAME in log and "output.joblib does not match" in log, log[-4000:]

    # A plain `quarto render` (no guard) overwrites the freeze; the guarded render must not trust it.
    output.unlink()
    shutil.copy2(REPO / "cache" / "fashion" / NAME / "output.joblib", output)
    rc, log = _render(doc, env)
    assert rc == 0, log[-4000:]
    (doc / "helper.py").write_text('LABEL = "plain"\n')
    plain_env = {**env, MARK: uuid.uuid4().hex}
    subprocess.run([quarto, "render", "doc.qmd", "--to", "html"], cwd=doc, env=plain_env, capture_output=True, timeout=600)
    assert left_running(plain_env[MARK]) == []
    (doc / "helper.py").write_text('LABEL = "second"\n')  # the inputs are those of the recorded render again
    rc, log = _render(doc, env)
    assert rc == 0 and _kernels(log) == 1 and "not the one this script recorded" in log, log[-4000:]
    shows("second", "edited")
