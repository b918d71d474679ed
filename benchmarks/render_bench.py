"""The render section of `make bench` (`python benchmarks/bench.py --only render`).

* The report, all three formats, against a trivial Python document (one cell importing numpy and
  matplotlib, one inline value) with the same `_quarto.yml`, filters and post-render script, both
  rendered the way `make report` renders (tools/render_quarto.py: the stored execution reused
  while nothing it reads changed, else one daemon kernel for the formats, new for every render).
  Two schemes, each with one warm-up render of each document, then two timed renders of each,
  taken in turn; the best of the two is quoted, and the ratio of the bests:
  reused (the steady state of `make report`: no kernel starts) and executed (`--no-freeze`: the
  first render after a change to the code, the cache or the document).
* The report's Python alone (nbclient, the report's code cells from `quarto convert`, figures as
  PNG): executed twice in one kernel, as Quarto's daemon executes it for the second and third
  format. The first pass is the cold execution (imports included, kernel start not), the second
  the warm one (Quarto's `%reset` in between, modules kept).
* `python -m hw3 results`, best of two.
Printed, never asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"

TRIVIAL = '''---
title: "A trivial document"
---

```{python}
import numpy as np
import matplotlib.pyplot as plt
x = np.arange(10).sum()
```

The sum is `{python} int(x)`.
'''


def _env() -> dict[str, str]:
    env = dict(os.environ, HW3_CACHE_ONLY="1")
    env.pop("HW3_CACHE_DIR", None)  # the committed cache, as `make report`
    env.setdefault("QUARTO_PYTHON", sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "code"), str(TOOLS), env.get("PYTHONPATH")]))
    return env


def trivial_project(folder: Path) -> Path:
    """`folder` as a Quarto project like ours whose only document is the trivial one; its path."""
    import yaml

    shutil.copytree(ROOT / "filters", folder / "filters")
    config = (ROOT / "_quarto.yml").read_text()
    project = yaml.safe_load(config).get("project", {})
    for key in ("pre-render", "post-render"):  # the project's scripts run for the trivial document too
        scripts = project.get(key) or []
        for script in [scripts] if isinstance(scripts, str) else scripts:
            target = folder / script.split()[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / script.split()[0], target)
    assert "- report.qmd" in config, "_quarto.yml no longer lists report.qmd: update the render bench"
    (folder / "_quarto.yml").write_text(config.replace("- report.qmd", "- trivial.qmd"))
    (folder / "trivial.qmd").write_text(TRIVIAL)
    return folder / "trivial.qmd"


def _render_seconds(qmd: Path, out: Path, extra: list[str], kernels_expected: int | None) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(TOOLS / "render_quarto.py"), str(qmd), "--output-dir", str(out), *extra],
                          cwd=qmd.parent, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"rendering {qmd.name} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    kernels = (proc.stdout + proc.stderr).count("Starting python3 kernel")
    if kernels_expected is not None and kernels != kernels_expected:
        print(f"  note: {qmd.name} started {kernels} kernels ({kernels_expected} expected)", flush=True)
    return seconds


SCHEMES = {"reused": ([], 0), "executed": (["--no-freeze"], 1)}  # render_quarto options, kernels per render


def renders() -> dict[str, tuple[float, float]] | None:
    if shutil.which("quarto") is None:
        print("  skipped: no `quarto` on PATH (README, Rendering)")
        return None
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "trivial").mkdir()
        docs = {"report": ROOT / "report.qmd", "trivial": trivial_project(tmp / "trivial")}
        for scheme, (extra, kernels) in SCHEMES.items():
            for name, qmd in docs.items():  # warm-up: file caches, Quarto's own first-run work, the stored execution
                _render_seconds(qmd, tmp / f"out-{name}", extra, None)
            times: dict[str, list[float]] = {name: [] for name in docs}
            for _ in range(2):
                for name, qmd in docs.items():
                    times[name].append(_render_seconds(qmd, tmp / f"out-{name}", extra, kernels))
            report, trivial = min(times["report"]), min(times["trivial"])
            print(f"  {scheme}: report, three formats (html, typst, ipynb): {report:5.1f} s   (runs: {', '.join(f'{t:.1f}' for t in times['report'])})")
            print(f"  {scheme}: trivial document, the same formats:         {trivial:5.1f} s   (runs: {', '.join(f'{t:.1f}' for t in times['trivial'])})")
            print(f"  {scheme}: ratio report / trivial: {report / trivial:.2f}× (best of two each, after a warm-up render; goal ≤ 2×)", flush=True)
            found[scheme] = (report, trivial)
    return found


def report_notebook():
    """The report's code cells as a notebook (`quarto convert`), figures as PNG as _quarto.yml asks.
    Inline values are not evaluated: they read what the cells computed, a few milliseconds."""
    import nbformat

    from find_quarto import locate

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.ipynb"
        subprocess.run([str(locate()), "convert", str(ROOT / "report.qmd"), "--output", str(out)],
                       check=True, capture_output=True)
        nb = nbformat.read(out, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        'from matplotlib_inline.backend_inline import set_matplotlib_formats\nset_matplotlib_formats("png")'))
    return nb


def execution() -> None:
    """Seconds of the report's Python: kernel start, cold execution, warm execution (same kernel)."""
    import nbformat
    from nbclient import NotebookClient

    nb = report_notebook()
    env = {**_env(), "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    started = time.perf_counter()
    with client.setup_kernel(env=env):
        kernel = time.perf_counter() - started
        passes = []
        for _ in range(2):
            started = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code" and "skip-execution" not in cell.metadata.get("tags", []):
                    client.execute_cell(cell, index)
            passes.append(time.perf_counter() - started)
            nb.cells.append(nbformat.v4.new_code_cell("%reset -f"))  # what Quarto's cleanup cell does
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
            nb.cells.pop()
    print(f"  report's Python (nbclient, one kernel): kernel start {kernel:.1f} s, cold execution (imports included) "
          f"{passes[0]:.1f} s, warm execution (same kernel, after %reset) {passes[1]:.1f} s", flush=True)


def results_command() -> None:
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "hw3", "results"], cwd=ROOT, env=_env(), capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if proc.returncode != 0:
            print(f"  `python -m hw3 results` failed: {proc.stderr.strip()[-500:]}")
            return
    states = {"cached", "stale", "missing", "unreadable"}
    listed = sum(1 for line in proc.stdout.splitlines() if len(line.split()) > 1 and line.split()[1] in states)
    print(f"  `python -m hw3 results` ({listed} experiments): {min(seconds):.1f} s (best of two)", flush=True)


def main() -> None:
    print("render (tools/render_quarto.py, as `make report`: the stored execution reused, or executed in one cold kernel):", flush=True)
    renders()
    execution()
    results_command()


if __name__ == "__main__":
    main()
