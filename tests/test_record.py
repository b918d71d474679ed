"""hw3.report.record: every stored result is read through one typed record, and each number has one derivation.

* The accuracy a table shows and its interval come from the same stored predictions. The training
  loop's running counts (what `evaluate` returned) must agree with them on every cached run, so
  that reading accuracies from the predictions changed no number of the report.
* Above the record, nothing reads a stored result by its string keys (`["history"]`, `["final"]`, ...):
  the report layer, the CLI and report.qmd use attributes.
* The prose's counts of optimisers and seeds are computed from the run lists, never typed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hw3.experiments import registry
from hw3.report import record

ROOT = Path(__file__).resolve().parents[1]
STORED_KEYS = ("history", "final", "predictions", "labels", "meta", "config", "state_dict")
KEY_ACCESS = re.compile(r"""\[\s*["'](%s)["']\s*\]""" % "|".join(STORED_KEYS))


def _trained_runs():
    return [(exp, c) for exp, c in registry.all_experiments() if exp.prefix in ("fashion", "bonus", "multimnist", "multimnist-single", "multimnist-final")]


@pytest.mark.committed_cache
@pytest.mark.parametrize("run", _trained_runs(), ids=registry.name_of)
def test_accuracy_from_predictions_equals_the_running_count(run):
    exp, config = run
    stored = exp(config)
    r = record.load(config)
    for split, metrics in stored["final"].items():
        e = r.on(split)
        if "acc" in metrics:
            assert e.acc == pytest.approx(metrics["acc"], abs=1e-12), f"{r.name} {split}"
        else:  # several heads: each head, and every head right
            for head in e.heads:
                assert e.accuracy(head).value == pytest.approx(metrics[f"acc_{head}"], abs=1e-12), f"{r.name} {split} {head}"
            assert e.acc == pytest.approx(metrics["acc_all"], abs=1e-12), f"{r.name} {split} both"
        assert e.loss == metrics["loss"]


@pytest.mark.committed_cache
def test_a_run_record_exposes_history_evaluations_weights_and_meta():
    from hw3.experiments import fashion

    r = record.load(fashion.MLP_NESTEROV)
    assert r.history.n_epochs == fashion.MLP_NESTEROV.epochs == len(r.history("val", "acc"))
    assert r.on("test").correct().shape == (10_000,) and r.on("test").correct().dtype == bool
    assert set(r.weights) and r.meta.num_parameters == sum(np.asarray(w).size for w in r.weights.values())
    assert r.label == "SGD+Nesterov(0.01, 0.9)"
    with pytest.raises(KeyError, match="was not evaluated on 'val_tta'"):
        r.on("val_tta")


READERS = sorted((ROOT / "code" / "hw3" / "report").glob("*.py")) + [ROOT / "code" / "hw3" / "cli.py", ROOT / "report.qmd"]


@pytest.mark.parametrize("path", [p for p in READERS if p.name != "record.py"], ids=lambda p: p.name)
def test_no_string_key_access_into_a_stored_result(path):
    hits = [f"line {i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1) if KEY_ACCESS.search(line)]
    assert not hits, f"{path.name} reads stored results by key; use hw3.report.record's attributes:\n" + "\n".join(hits)


def test_the_key_check_sees_both_quote_styles():
    assert KEY_ACCESS.search('r["history"]["epochs"]') and KEY_ACCESS.search("f\"{r['final']['val']}\"")
    assert not KEY_ACCESS.search('gallery.normalization["mean"]')


# Counts the prose must compute from the run lists: a typed one goes wrong when a list grows.
TYPED_COUNTS = re.compile(r"\b(two|three|four|five|six|\d+)\s+(optimi[sz]ers|training seeds|seeds|step comparisons|steps were trained)\b", re.I)


def test_report_types_no_count_of_optimisers_seeds_or_steps():
    text = ROOT.joinpath("report.qmd").read_text()
    prose = re.sub(r"```\{python\}.*?```", "", text, flags=re.S)  # code cells may name their own constants
    hits = [m.group(0) for m in TYPED_COUNTS.finditer(prose)]
    assert not hits, f"compute these from the run lists: {hits}"
