"""The notebook a grader runs: listings of the graded code become code cells that define it.

`hw3.report.listing.show` prints a package definition with the imports it needs; `tools/runnable_notebook.py`
turns that printed listing back into a code cell. These tests hold both ends to their contract; the
rendered notebook itself is executed in tests/test_rendered_report.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw3 import backprop
from hw3.report import listing
from hw3.nn import models, multimnist_data, train
from runnable_notebook import make_runnable, rewrite


def _run_listing(*objects) -> dict:
    """Execute a listing's code, as a fresh notebook kernel would, and return its namespace."""
    block = listing.listing(*objects)
    code = block.removeprefix("```python\n").removesuffix("```\n")
    namespace: dict = {}
    exec(compile(code, "<listing>", "exec"), namespace)
    return namespace


def test_a_listing_runs_on_its_own_and_defines_the_same_function():
    ns = _run_listing(backprop.sigmoid, backprop.predict)
    W = backprop.init_weights(5, 6, seed=0)
    X = np.random.default_rng(1).standard_normal((4, 5))
    for ours, theirs in zip(ns["predict"](X, W), backprop.predict(X, W)):
        np.testing.assert_array_equal(ours, theirs)
    assert ns["predict"] is not backprop.predict, "the listing must define the function, not import it"


@pytest.mark.parametrize("objects", [(models.MLP,), (models._conv_block, models.CNN), (models.MultiMNISTNet,),
                                     (train.Objective,), (train.fit,), (train._Tally,),
                                     (multimnist_data.make_new_samples, multimnist_data.make_new_sample)])
def test_every_kind_of_listing_resolves_its_names(objects):
    ns = _run_listing(*objects)
    assert all(o.__name__ in ns for o in objects)


def test_a_listing_from_two_modules_is_refused():
    with pytest.raises(ValueError, match="one hw3 module"):
        listing.listing(backprop.predict, models.MLP)


def _nb(cells, **metadata) -> dict:
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def test_quarto_markdown_listing_becomes_a_code_cell_between_its_prose():
    block = listing.listing(backprop.gradient)
    md = {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": f"Before.\n\n{block}\nAfter."}
    nb = make_runnable(_nb([md, {"cell_type": "code", "id": "c1", "metadata": {}, "outputs": [], "source": ""}]))
    kinds = [(c["cell_type"], "".join(c["source"])[:20]) for c in nb["cells"]]
    assert kinds == [("markdown", "Before."), ("code", "# from code/hw3/back"), ("markdown", "After.")]
    assert len({c["id"] for c in nb["cells"]}) == 3, "cell ids must stay unique after a split"


def test_no_local_path_is_kept_in_the_kernelspec(tmp_path):
    path = tmp_path / "report.ipynb"
    path.write_text(json.dumps(_nb([], kernelspec={"name": "python3", "path": "/home/someone/.venv/share/jupyter"})))
    rewrite(path)
    assert "path" not in json.loads(path.read_text())["metadata"]["kernelspec"]
