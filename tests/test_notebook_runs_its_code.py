"""The notebook runs the code it shows: its listing cells are what later cells call, an edited listing
is never shown with stored results as its own, RETRAIN trains with the notebook's cells, and the
submission archive runs anywhere.

Every test here executes (part of) the rendered notebook with nbclient, so they share the session's
render (`rendered`, from test_rendered_report) and need the datasets; they skip without them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from test_rendered_report import REPO, rendered  # noqa: F401 (the session's render, a fixture)

import make_submission

LISTING = re.compile(r"^# from code/hw3/[\w/]+\.py$")


def _source(cell) -> str:
    return "".join(cell["source"])


def _is_listing(cell) -> bool:
    return cell["cell_type"] == "code" and bool(LISTING.match(_source(cell).splitlines()[0] if _source(cell) else ""))


def _defined(source: str) -> list[str]:
    tree = ast.parse(source)
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return names + [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]


def _used(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _data_or_skip() -> str:
    folder = Path(os.environ.get("HW3_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (folder / "FashionMNIST" / "raw").is_dir() or not (folder / "MNIST" / "raw").is_dir():
        pytest.skip("the notebook's live cells need FashionMNIST and MNIST (HW3_DATA_DIR)")
    return str(folder)


def _execute(nb: dict, folder: Path, env: dict[str, str] | None = None, kernel: str = "python3"):
    """Run `nb` top to bottom in a fresh kernel from `folder`, cache-only; returns (notebook, error or None)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.reads(json.dumps(nb), as_version=4)
    saved = dict(os.environ)
    os.environ.pop("HW3_CACHE_DIR", None)
    os.environ.update({"HW3_CACHE_ONLY": "1", "HW3_DATA_DIR": _data_or_skip(), **(env or {})})
    try:
        NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(folder)}}).execute()
        return nb, None
    except CellExecutionError as exc:
        return nb, exc
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _copy(nb: dict) -> dict:
    return json.loads(json.dumps(nb))


def _cell_defining(nb: dict, name: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if _is_listing(c) and name in _defined(_source(c)))


def _inject(source: str, name: str, statement: str, method: str = "__call__") -> str:
    """`source` with `statement` as the first line of `name`'s body (of its `method` for a class)."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if getattr(n, "name", None) == name)
    if isinstance(node, ast.ClassDef):
        node = next(n for n in node.body if getattr(n, "name", None) == method)
    first = node.body[0]
    lines = source.splitlines()
    indent = " " * first.col_offset
    lines.insert(first.lineno - 1, f"{indent}{statement}")
    return "\n".join(lines)


def _truncated(nb: dict, last_label: str) -> dict:
    """The notebook up to and including the cell whose `#| label:` is `last_label` (Quarto's cell id)."""
    for i, cell in enumerate(nb["cells"]):
        if cell.get("id", "") in (last_label, f"cell-{last_label}"):  # Quarto prefixes figure and table cells' ids
            return {**nb, "cells": nb["cells"][: i + 1]}
    raise AssertionError(f"no cell labelled {last_label}")


def test_every_listing_is_called_by_a_later_code_cell(rendered):  # noqa: F811
    """Each definition of a listing cell is reached from a later non-listing cell: used there by name,
    or used by a definition that is (the listings' own call graph)."""
    cells = rendered.nb["cells"]
    defined_at = {}
    uses = {}
    for i, cell in enumerate(cells):
        if _is_listing(cell):
            for name in _defined(_source(cell)):
                defined_at[name] = i
                uses[name] = _used(_source(cell))
    assert len(defined_at) >= 25, sorted(defined_at)
    called = set()
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and not _is_listing(cell):
            called |= {n for n in _used(_source(cell)) if n in defined_at and defined_at[n] < i}
    frontier = set(called)
    while frontier:
        frontier = {m for n in frontier for m in uses[n] if m in defined_at and m not in called}
        called |= frontier
    assert sorted(set(defined_at) - called) == []


def test_a_listing_never_imports_what_an_earlier_listing_defined(rendered):  # noqa: F811
    seen: set[str] = set()
    for cell in rendered.nb["cells"]:
        if _is_listing(cell):
            imported = {a.asname or a.name for n in ast.parse(_source(cell)).body if isinstance(n, ast.ImportFrom) for a in n.names}
            assert not imported & seen, f"re-imports {sorted(imported & seen)} from the package, shadowing the notebook's own"
            seen |= set(_defined(_source(cell)))


@pytest.mark.parametrize("name", ["dataloaders", "evaluate", "RandomPermutation", "make_new_sample"])
def test_an_error_injected_into_a_listing_cell_stops_the_notebook_there(rendered, name):  # noqa: F811
    nb = _copy(rendered.nb)
    at = _cell_defining(nb, name)
    nb["cells"][at]["source"] = _inject(_source(nb["cells"][at]), name, f"raise RuntimeError('injected into {name}')")
    _, error = _execute(nb, rendered.out)
    assert error is not None, f"the notebook ran although its {name} raises: its copy is not what runs"
    assert f"injected into {name}" in str(error)


@pytest.mark.parametrize("name, method", [("fit", None), ("Objective", "__call__"), ("evaluate", None)])
def test_an_edited_listing_makes_the_stored_result_cells_say_so(rendered, name, method):  # noqa: F811
    """A function, a class and a decorated function: each edit is named beside the stored results."""
    nb = _truncated(_copy(rendered.nb), "fig-mlp-curves")
    at = _cell_defining(nb, name)
    nb["cells"][at]["source"] = _inject(_source(nb["cells"][at]), name, "pass  # a reader's edit", method or "__call__")
    executed, error = _execute(nb, rendered.out)
    assert error is None, error
    text = "".join(o.get("text", "") for o in executed.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    assert f"`{name}`" in text and "RETRAIN" in text, text


def test_an_unedited_notebook_says_nothing_about_edits(rendered):  # noqa: F811
    executed, error = _execute(_truncated(_copy(rendered.nb), "fig-mlp-curves"), rendered.out)
    assert error is None, error
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "differ(s) from it" not in text and "MISMATCH" not in text and "Retrained now" in text


def _small_data(folder: Path) -> Path:
    """FashionMNIST and MNIST cut to 10,500 training and 1,000 test images (IDX files, as torchvision lays them out)."""
    from hw3.nn import data

    for name in ("FashionMNIST", "MNIST"):
        raw = folder / name / "raw"
        raw.mkdir(parents=True)
        for train, n in ((True, 10_500), (False, 1_000)):
            images, labels = data.load_raw(name, train)
            prefix = "train" if train else "t10k"
            (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
                b"\x00\x00\x08\x03" + np.array([n, 28, 28], ">u4").tobytes() + images[:n].numpy().tobytes())
            (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
                b"\x00\x00\x08\x01" + np.array([n], ">u4").tobytes() + labels[:n].numpy().astype(np.uint8).tobytes())
    return folder


def test_retrain_trains_with_the_notebooks_own_cells(rendered, tmp_path):  # noqa: F811
    """RETRAIN on a reduced setting (two epochs, 500 training images), the whole notebook: the notebook's
    `fit` trains every run, and the package's `fit` and `train_and_record` never run. At this size some
    configurations do not learn and validation may choose a single-seed bonus step, so the cells that
    compare runs must cope with both. (Two epochs, not one: a one-cycle schedule over four steps
    divides by zero in torch.)"""
    os.environ.setdefault("HW3_DATA_DIR", _data_or_skip())
    nb = _copy(rendered.nb)
    setup = next(i for i, c in enumerate(nb["cells"]) if c.get("id") == "setup")
    nb["cells"][setup]["source"] = _source(nb["cells"][setup]).replace("RETRAIN = False", "RETRAIN = True", 1)
    assert "RETRAIN = True" in _source(nb["cells"][setup])
    spy = ("import sys, hw3.nn.train, hw3.experiments.skeleton\n"
           "FIT_CALLS, PACKAGE_CALLS, CNN_BUILT = [], [], []\n"
           "_codes = {hw3.nn.train.fit.__code__, hw3.experiments.skeleton.train_and_record.__code__}\n"
           "sys.setprofile(lambda frame, event, arg: PACKAGE_CALLS.append(frame.f_code.co_name) "
           "if event == 'call' and frame.f_code in _codes else None)")
    nb["cells"].insert(setup + 1, {"cell_type": "code", "id": "spy", "metadata": {}, "outputs": [], "execution_count": None, "source": spy})
    at = _cell_defining(nb, "fit")
    nb["cells"][at]["source"] = _inject(_source(nb["cells"][at]), "fit", "FIT_CALLS.append(1)")
    at = _cell_defining(nb, "CNN")
    nb["cells"][at]["source"] = _inject(_source(nb["cells"][at]), "CNN", "CNN_BUILT.append(1)", "__init__")
    nb["cells"].append({"cell_type": "code", "id": "report", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "sys.setprofile(None)\nprint(len(FIT_CALLS), len(PACKAGE_CALLS), len(CNN_BUILT))"})
    executed, error = _execute(nb, rendered.out, {"HW3_RETRAIN_EPOCHS": "2", "HW3_DATA_DIR": str(_small_data(tmp_path / "data"))})
    assert error is None, error
    fit_calls, package_calls, cnn_built = map(int, "".join(executed.cells[-1]["outputs"][0]["text"]).split())
    assert package_calls == 0
    assert cnn_built >= 4, cnn_built  # the CNN runs trained the notebook's CNN class (a class, found by its cell)
    assert fit_calls >= 8, fit_calls  # the four MLP and four CNN runs, at least
    log = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "RETRAIN is on" in log and "computing fashion-cnn-adam-lr0.01" in log
    assert "computing bonus-wide" in log and "computing multimnist-final-both" in log, "RETRAIN reaches the bonus and Part 3"


def _runtime_interpreter(folder: Path) -> Path:
    """A fresh virtual environment that sees this environment's installed packages but not the
    repository's editable `hw3` (a path in a .pth file: the editable install's own .pth is not read)."""
    import site
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "runtime.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    assert site  # noqa: the import documents where purelib comes from
    return python


def test_the_submission_runs_in_a_fresh_folder_without_the_repository(rendered, tmp_path):  # noqa: F811
    archive = make_submission.build(tmp_path / "hw3-submission.zip", rendered.out / "report.ipynb", rendered.out / "report.pdf")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as z:
        z.extractall(unpacked)
    assert {"report.ipynb", "report.pdf", "README.txt"} <= {p.name for p in unpacked.iterdir()}
    assert (unpacked / "code" / "hw3" / "__init__.py").is_file() and any((unpacked / "cache").glob("*/*/meta.json"))
    python = _runtime_interpreter(tmp_path / "venv")
    cannot = subprocess.run([python, "-c", "import hw3"], cwd=tmp_path, capture_output=True, text=True)
    assert cannot.returncode != 0 and "No module named 'hw3'" in cannot.stderr, "the interpreter must not see the repository's hw3"
    kernels = tmp_path / "jupyter" / "kernels" / "submission"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                      "display_name": "submission", "language": "python"}))
    nb = json.loads((unpacked / "report.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "id": "where", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "import hw3, hw3.environment as e\nprint(hw3.__file__)\nprint(e.cache_dir())"})
    executed, error = _execute(nb, unpacked, {"JUPYTER_PATH": str(tmp_path / "jupyter")}, kernel="submission")
    assert error is None, error
    where = "".join(executed.cells[-1]["outputs"][0]["text"]).split()
    assert where[0].startswith(str(unpacked)) and where[1] == str(unpacked / "cache"), where
