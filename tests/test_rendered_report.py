"""The rendered report, all three formats, each complete, as `quarto render report.qmd` writes them.

Quarto renders once per session into a temporary output folder (about a minute on two cores), as
`make report` does, through tools/render_quarto.py (one daemon kernel for the three formats, stopped
at the end). Without Quarto these tests skip with one line, unless HW3_REQUIRE_QUARTO=1 (set by
.ci/run): then they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import find_quarto
import render_quarto
import report_outputs as ro

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "report.qmd"

# Lines the render may print, each with the reason (README: "Rendering"). Anything else that looks
# like a warning or an error fails the test.
KNOWN_WARNINGS = {
    # ipykernel >= 7 warns that the kernel Quarto starts listens on local TCP without CurveZMQ
    # encryption; Quarto gives no option to change the transport.
    r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption",
}
_WARNING_RE = re.compile(r"warn|error|could not|unable to", re.IGNORECASE)
MARK = "HW3_TEST_RENDER_MARK"  # an environment variable that only the processes of one test render carry


def quarto_or_skip() -> str:
    """Quarto as `make report` finds it ($QUARTO, PATH, .venv's quarto-cli), never installing it."""
    quarto = find_quarto.locate()
    if quarto:
        return str(quarto)
    if os.environ.get("HW3_REQUIRE_QUARTO") == "1":
        pytest.fail("HW3_REQUIRE_QUARTO=1 but no Quarto was found (.ci/run installs it with "
                    "../shared/tools/quarto/install)")
    pytest.skip("no Quarto found ($QUARTO, PATH, .venv; see README, Rendering); HW3_REQUIRE_QUARTO=1 makes this a failure")


class Rendered:
    def __init__(self, out: Path, log: str, seconds: float, left_running: list[int]):
        self.out, self.log, self.seconds, self.left_running = out, log, seconds, left_running
        self.html = (out / "report.html").read_text(encoding="utf-8")
        self.nb = ro.load_ipynb(out / "report.ipynb")
        self.pdf = out / "report.pdf"
        self.pdf_pages = ro.pdf_pages_text(self.pdf)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Rendered:
    out = tmp_path_factory.mktemp("quarto-output")
    env = dict(os.environ)
    env.pop("HW3_CACHE_DIR", None)  # the committed cache/, in cache-only mode, as `make report`
    env["HW3_CACHE_ONLY"] = "1"
    paths = [str(REPO / "code"), str(REPO / "tools"), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env[MARK] = uuid.uuid4().hex  # inherited by every process the render starts
    env["QUARTO_PYTHON"] = sys.executable
    env["QUARTO"] = quarto_or_skip()
    command = [sys.executable, str(REPO / "tools" / "render_quarto.py"), str(REPORT), "--output-dir", str(out)]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"render failed ({proc.returncode}):\n{log[-6000:]}"
    return Rendered(out, log, seconds, left_running(env[MARK]))


def left_running(mark: str, grace: float = 5.0) -> list[int]:
    """The processes carrying MARK=mark once `grace` seconds have passed (at once if there are none)."""
    deadline = time.monotonic() + grace
    while (pids := render_quarto.marked_processes(mark, MARK)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


def test_render_leaves_no_process_running(rendered):
    if not Path("/proc/self/environ").exists():
        pytest.skip("finding a render's processes reads /proc (Linux)")
    assert rendered.left_running == []


def test_quarto_executes_once_for_the_three_formats(rendered):
    assert rendered.log.count("Starting python3 kernel") == 1, rendered.log[-3000:]


def test_render_prints_no_unknown_warnings(rendered):
    unknown = [line for line in rendered.log.splitlines()
               if _WARNING_RE.search(line) and not any(re.search(k, line) for k in KNOWN_WARNINGS)]
    assert not unknown, "\n".join(unknown)


def test_html_needs_no_network(rendered):
    assert ro.external_resources(rendered.html) == []


def test_html_maths_is_mathml(rendered):
    """Typeset by the browser: no MathJax/KaTeX to fetch, no TeX left in the text."""
    assert rendered.html.count("<math") > 20
    assert not re.search(r"mathjax|katex", rendered.html, re.IGNORECASE)


def test_ipynb_is_a_valid_notebook(rendered):
    import nbformat

    nbformat.validate(nbformat.reads(ro.json.dumps(rendered.nb), as_version=4))


def test_ipynb_has_every_figure_and_table(rendered):
    expected = ro.expected_floats(REPORT.read_text(encoding="utf-8"))
    outputs = [o for c in rendered.nb["cells"] for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert not [o for o in outputs if o["output_type"] == "display_data" and not o.get("data")], "empty outputs"
    assert len(images) >= sum(k == "Figure" for k, _, _ in expected)
    assert len(ro.markdown_table_headers(rendered.nb)) >= sum(k == "Table" for k, _, _ in expected)


def test_ipynb_every_caption_has_its_figure_or_table(rendered):
    """A `fig-` chunk must show an image and a `tbl-` chunk a table: a chunk whose last line is an
    assignment shows nothing, and no error would say so."""
    checked = 0
    for cell in rendered.nb["cells"]:
        outputs = cell.get("outputs", [])
        for i, out in enumerate(outputs):
            md = "".join(out.get("data", {}).get("text/markdown", ""))
            for kind, number, caption in ro._parse_captions([md]):
                checked += 1
                if kind == "Figure":
                    assert i > 0 and "image/png" in outputs[i - 1].get("data", {}), f"Figure {number} has no image"
                else:
                    assert ro.markdown_table_headers({"cells": [{"outputs": [out]}]}), f"Table {number} has no table"
    assert checked == len(ro.expected_floats(REPORT.read_text(encoding="utf-8")))


def test_inline_expressions_are_evaluated(rendered):
    markdown = "".join("".join(c["source"]) for c in rendered.nb["cells"] if c["cell_type"] == "markdown")
    assert "{python}" in REPORT.read_text(encoding="utf-8")
    shown = re.sub(r"<pre.*?</pre>", "", rendered.html, flags=re.DOTALL)  # not the code tools' source view
    for fmt, text in (("ipynb", markdown), ("html", shown), ("pdf", "".join(rendered.pdf_pages))):
        assert "{python}" not in text, fmt


@pytest.mark.parametrize("fmt", ["html", "pdf", "ipynb"])
def test_figures_and_tables_numbered_as_in_the_report(rendered, fmt):
    expected = ro.expected_floats(ro.shown_in(REPORT.read_text(encoding="utf-8"), fmt))
    found = {"html": lambda: ro.captions_html(rendered.html), "ipynb": lambda: ro.captions_ipynb(rendered.nb),
             "pdf": lambda: ro.captions_pdf(rendered.pdf_pages)}[fmt]()
    assert ro.float_mismatches(found, expected) == []


def test_cross_references_agree(rendered):
    """Every `@fig-`/`@tbl-` link shows its target's number, the same in HTML and ipynb; none unresolved."""
    numbers = {}
    for label, kind, n in _labels():
        numbers[label] = f"{kind} {n}"
    for refs in (ro.xrefs_html(rendered.html), ro.xrefs_ipynb(rendered.nb)):
        wrong = [(label, shown) for label, shown in refs if label in numbers and shown != numbers[label]]
        assert not wrong
    assert ro.xrefs_html(rendered.html) == ro.xrefs_ipynb(rendered.nb)
    unresolved = re.compile(r"\?@(fig|tbl|sec|eq)-")
    assert not unresolved.search("".join(rendered.pdf_pages)) and not unresolved.search(rendered.html)


def _labels():
    counters = {"fig": 0, "tbl": 0}
    for m in re.finditer(r"#\|\s*label:\s*((fig|tbl)-[\w-]+)\n(?:#\|.*\n)*?#\|\s*\2-cap:", REPORT.read_text()):
        counters[m.group(2)] += 1
        yield m.group(1), {"fig": "Figure", "tbl": "Table"}[m.group(2)], counters[m.group(2)]


def test_pdf_has_no_text_in_the_footer(rendered):
    assert ro.text_in_footer(rendered.pdf) == []


def test_pdf_shows_every_table_header_and_the_last_rows(rendered):
    text = ro.normalized("\n".join(rendered.pdf_pages))
    # every table but the provenance table, which the PDF leaves out (content-hidden when-format="typst")
    headers = [h for h in ro.markdown_table_headers(rendered.nb) if h[0] != "experiment"]
    assert len(headers) >= 9
    unreadable = [h for h in headers if " ".join(h) not in text]
    assert not unreadable
    # the longest table the PDF prints ends with these rows (the provenance table is HTML and notebook only)
    in_pdf = [o for c in rendered.nb["cells"] for o in c.get("outputs", [])
              if (h := ro.markdown_table_headers({"cells": [{"outputs": [o]}]})) and " ".join(h[0]) in text]
    longest = max(in_pdf, key=lambda o: "".join(o.get("data", {}).get("text/markdown", "")).count("\n"))
    rows = "".join(longest["data"]["text/markdown"]).strip().splitlines()[-2:]
    for row in rows:
        cells = [re.sub(r"\\(.)", r"\1", c).strip() for c in row.strip().strip("|").split("|")]  # `\-`
        assert " ".join(cells) in text, f"last rows of the longest table missing from the PDF: {cells}"


def _executed(rendered, tmp_path_factory):
    """The rendered notebook, run top to bottom by nbclient in a fresh kernel from its own folder (cache-only)."""
    import nbformat
    from nbclient import NotebookClient

    if getattr(rendered, "executed", None) is None:
        nb = nbformat.reads(ro.json.dumps(rendered.nb), as_version=4)
        saved = dict(os.environ)
        # The kernel inherits the environment: the committed cache/ (not the tests' temporary one), cache-only,
        # so a missing result is an error, never a training run.
        os.environ.pop("HW3_CACHE_DIR", None)
        os.environ["HW3_CACHE_ONLY"] = "1"
        try:
            NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(rendered.out)}}).execute()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        rendered.executed = nb
    return rendered.executed


def test_notebook_runs_top_to_bottom_in_a_fresh_kernel(rendered, tmp_path_factory):
    nb = _executed(rendered, tmp_path_factory)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[:1]


def test_notebook_defines_the_graded_code_it_lists(rendered, tmp_path_factory):
    sources = ["".join(c["source"]) for c in rendered.nb["cells"] if c["cell_type"] == "code"]
    for name in ("def predict", "def logistic_loss", "def stable_logistic_loss", "def gradient", "class MLP", "class CNN",
                 "def count_parameters", "class RandomPermutation", "def make_new_sample", "class MultiMNISTNet"):
        assert any(re.search(rf"^{name}\b", s, re.MULTILINE) for s in sources), f"no code cell defines {name}"
    assert any("predict(X, W)" in s and "backprop.predict" not in s for s in sources), "the cells after a listing call it"


def test_executed_notebook_has_the_html_figures_and_tables(rendered, tmp_path_factory):
    nb = _executed(rendered, tmp_path_factory)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    tables = sum(bool(ro.markdown_table_headers({"cells": [{"outputs": [o]}]})) for o in outputs)
    html = re.sub(r"<pre.*?</pre>", "", rendered.html, flags=re.DOTALL)  # not the code tools' source view
    assert images >= len(re.findall(r"<img\b", html)) > 0
    assert tables >= len(re.findall(r"<table\b", html)) > 0


def test_no_path_of_the_rendering_machine_in_the_notebook(rendered):
    text = ro.json.dumps(rendered.nb)
    assert str(REPO) not in text and "path" not in rendered.nb["metadata"].get("kernelspec", {})
