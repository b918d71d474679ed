"""`python -m hw3`: exit codes and messages of results / run / gc, and the report's tables (hw3.report.results).

The commands run on a private empty cache (conftest) and, for `run`, an empty data folder: nothing
trains. Two of them run as real `python -m hw3` processes (exit status, stderr); the rest call
`hw3.cli.main` in this process, which is what `python -m hw3` returns as its exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hw3 import cli
from hw3.experiments import fashion, registry
from hw3.report import provenance, record, runs, tables
from hw3.environment import PROJECT_ROOT

COMMITTED_CACHE = PROJECT_ROOT / "cache"


def hw3_process(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hw3", *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout)


# ----------------------------------------------------------------------------------------------
# run


def test_run_unknown_experiment_exits_2_naming_it(subprocess_env):
    proc = hw3_process("run", "no-such-experiment", env=subprocess_env)
    assert proc.returncode == 2, f"an unknown experiment name is a usage error (exit 2): {proc.returncode} {proc.stderr[-500:]}"
    assert "no-such-experiment" in proc.stderr, f"the error names the unknown experiment: {proc.stderr[-500:]}"
    assert "Traceback" not in proc.stderr, "a usage error is a message, not a traceback"


def test_run_without_data_exits_2_quickly_naming_the_missing_file(subprocess_env, tmp_path, private_cache):
    empty = tmp_path / "no-data"
    empty.mkdir()
    name = fashion.run_fashion.name(fashion.FASHION[0])
    started = time.perf_counter()
    proc = hw3_process("run", name, "--device", "cpu", env={**subprocess_env, "HW3_DATA_DIR": str(empty)})
    seconds = time.perf_counter() - started
    assert proc.returncode == 2, f"missing data is a data error (exit 2): {proc.returncode} {proc.stderr[-800:]}"
    assert "train-images-idx3-ubyte" in proc.stderr and str(empty / "FashionMNIST" / "raw") in proc.stderr, (
        f"the error names the missing file and where it was expected: {proc.stderr[-800:]}")
    assert "python -m hw3 download" in proc.stderr, "the error says how to get the data"
    assert "Traceback" not in proc.stderr
    assert seconds < 60, f"with no network the data layer fails fast (took {seconds:.0f} s)"
    assert list(empty.iterdir()) == [], "a failed run writes nothing into the data folder"
    assert not any(p.is_file() for p in private_cache.rglob("*")), "a failed run writes no cache entry"


def test_run_with_nothing_to_do_exits_0(monkeypatch, capsys):
    monkeypatch.setattr("hw3.compute.plan.to_compute", lambda runs, force=False: [])
    assert cli.main(["run"]) == 0
    assert "nothing to compute" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# results


def test_results_on_an_empty_cache_lists_every_experiment_as_missing(capsys):
    assert cli.main(["results"]) == 0, "`results` succeeds on an empty cache"
    out = capsys.readouterr().out
    names = list(registry.by_name())
    for name in names:
        assert any(line.startswith(name + " ") and " missing " in line for line in out.splitlines()), (
            f"{name} is listed as missing")
    assert f"{len(names)} stale or missing" in out, "the summary counts what is left to compute"


def test_results_json_on_an_empty_cache(capsys):
    assert cli.main(["results", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(registry.by_name()), "one row per registered experiment, in order"
    assert all(r["status"] == "missing" and r["reasons"] for r in rows), "every row of an empty cache is missing, with why"


def committed_entries() -> list[Path]:
    return sorted(COMMITTED_CACHE.glob("*/*/meta.json")) if COMMITTED_CACHE.is_dir() else []


@pytest.mark.committed_cache
@pytest.mark.skipif(not committed_entries(), reason="cache/ has no entries yet (make results fills it)")
def test_results_on_the_committed_cache_in_cache_only_mode(capsys):
    assert cli.main(["results", "--json"]) == 0, "`results` reads the committed cache in cache-only mode"
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == list(registry.by_name())
    for name, (exp, config) in registry.by_name().items():
        if (exp.folder(config) / "meta.json").is_file() and (exp.folder(config) / "output.joblib").is_file():
            assert rows[name]["status"] != "missing", f"{name} has an entry in cache/, so it is not missing"
        if rows[name]["status"] == "cached" and "final" in exp.load_entry(config):
            assert rows[name].get("val_acc") is not None or rows[name].get("test_acc") is not None, (
                f"a cached trained run shows a headline accuracy: {rows[name]}")
    assert cli.main(["results"]) == 0
    assert "experiment" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# gc


def test_gc_is_a_dry_run_unless_asked_to_delete(private_cache, capsys):
    exp, config = registry.by_name()["gallery"] if "gallery" in registry.by_name() else registry.all_experiments()[0]
    used = exp.folder(config)
    stray = private_cache / "fashion" / "fashion-an-old-config"
    empty_prefix = private_cache / "no-longer-an-experiment"
    for folder in (used, stray, empty_prefix):
        folder.mkdir(parents=True)
    (stray / "meta.json").write_text("{}")

    assert cli.main(["gc"]) == 0
    out = capsys.readouterr().out
    assert f"unused: {stray}" in out and f"unused: {empty_prefix}" in out, f"gc lists the unused entries: {out}"
    assert str(used) not in out, "an entry a registered experiment owns is not garbage"
    assert stray.exists() and empty_prefix.exists(), "gc without --delete removes nothing"
    assert "gc --delete" in out, "the dry run says how to delete"

    assert cli.main(["gc", "--delete", "--yes"]) == 0  # it asks first (tests/test_untrusted_cache.py)
    assert f"removing {stray}" in capsys.readouterr().out
    assert not stray.exists() and used.exists(), "gc --delete removes only the unused entries"


def test_gc_on_an_empty_cache(capsys):
    assert cli.main(["gc"]) == 0
    assert "No unused cache entries" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# The report's tables: hw3.report on fake results with train_and_record's schema


def _predictions(n: int, right: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, labels) of n images of which the first `right` are predicted correctly."""
    predictions, labels = np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8)
    labels[right:] = 1
    return predictions, labels


def fake_result(config, *, val_accs, val_loss, test_correct, n_test=100, train_loss=0.31234, seconds=123.4) -> dict:
    predictions, labels = _predictions(n_test, test_correct)
    val_predictions, val_labels = _predictions(10_000, round(val_accs[-1] * 10_000))
    return {
        "config": {"model": config.model},
        "history": {"epochs": {"train": {"loss": [0.9, train_loss], "acc": [0.7, 0.8]},
                               "val": {"loss": [0.6, val_loss], "acc": list(val_accs)}},
                    "step_loss": np.zeros(4, dtype=np.float32), "lr": [0.01, 0.01]},
        "final": {"val": {"loss": val_loss, "acc": val_accs[-1]}, "test": {"loss": 0.4321, "acc": test_correct / n_test}},
        "predictions": {"val": val_predictions, "test": predictions},
        "labels": {"val": val_labels, "test": labels},
        "state_dict": {"w": np.zeros(2, dtype=np.float32)},
        "meta": {"wall_time_s": seconds, "device": "cpu", "threads": 1, "num_parameters": 2},
    }


@pytest.fixture
def fake_fashion(monkeypatch):
    """Two registered Part 2 configs whose cached results are the fake ones, stored through the real store
    (run_fashion's body replaced), then read back in cache-only mode as typed records."""
    sgd, adam1 = fashion.fashion_config("mlp", "sgd"), fashion.fashion_config("cnn", "adam-lr1")
    fakes = {sgd: fake_result(sgd, val_accs=[0.8, 0.8523, 0.8512], val_loss=0.41234, test_correct=50),
             adam1: fake_result(adam1, val_accs=[0.1, 0.1], val_loss=float("nan"), test_correct=10, seconds=7.6)}
    fakes[adam1]["history"]["epochs"]["train"]["loss"][-1] = 12345.6
    monkeypatch.setattr(fashion.run_fashion, "func", lambda config, settings: fakes[config])
    for config in fakes:
        fashion.run_fashion(config)
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    return sgd, adam1


def test_fashion_table_reads_the_cached_results(fake_fashion):
    sgd, adam1 = fake_fashion
    df = tables.fashion_frame(runs.runs([sgd, adam1]))
    assert list(df["model"]) == ["MLP", "CNN"] and list(df["optimizer"]) == ["SGD(0.01)", "Adam(1)"]
    assert df["val acc"].tolist() == pytest.approx([0.8512, 0.1]), "the final validation accuracy, not the best epoch's"
    assert df["test acc"].tolist() == [0.5, 0.1]
    assert df["test 95% CI"][0] == "40.4–59.6", "the 95% Wilson interval of 50/100 correct test predictions"


def test_format_table_and_markdown_render_the_numbers(fake_fashion):
    sgd, adam1 = fake_fashion
    shown = tables.format_table(tables.fashion_frame(runs.runs([sgd, adam1])))
    assert shown["val acc"].tolist() == ["85.12%", "10.00%"], "accuracies as percentages with 2 decimals"
    assert shown["val loss"].tolist() == ["0.412", "NaN"], "losses to 3 decimals; a diverged run's NaN as 'NaN'"
    assert shown["train loss"].tolist() == ["0.312", "1.23e+04"], "huge losses in 3 significant digits"
    assert shown["test loss"].tolist() == ["0.432", "0.432"]
    assert shown["time (s)"].tolist() == ["123", "8"], "seconds as integers"

    table = tables.markdown_table(shown)
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rule = [c.strip() for c in lines[1].strip("|").split("|")]
    align = dict(zip(header, rule))
    assert align["val acc"].endswith(":") and not align["val acc"].startswith(":"), "numeric columns are right-aligned"
    assert align["model"].startswith(":") and not align["model"].endswith(":"), "text columns are left-aligned"
    assert align["val loss"].startswith(":"), "a column holding 'NaN' is text: left-aligned"
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[header.index("val acc")] == "85.12%" and cells[header.index("val loss")] == "0.412", (
        "the pipe table keeps the formatted cells as written")
    assert "1.23e+04" in table and "NaN" in table


def test_record_load_refuses_a_missing_entry_in_cache_only_mode(monkeypatch):
    from hw3.store.cached import CacheMissError

    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    config = fashion.FASHION[0]
    with pytest.raises(CacheMissError, match=fashion.run_fashion.name(config)):
        record.load(config)
    with pytest.raises(KeyError, match="no registered experiment"):
        record.load(replace(config, lr=0.123))


def test_machine_of_names_the_machine_that_computed_the_entry(fake_fashion):
    from hw3.store import fingerprint

    sgd, _ = fake_fashion
    label = provenance.machine_of(sgd)
    assert label.startswith(fingerprint.cpu_model()) and f"bf16 units: {fingerprint.cpu_bf16_units()}" in label, label
    assert label in provenance.machines()
    with pytest.raises(KeyError, match="no registered experiment"):
        provenance.machine_of(replace(sgd, lr=0.123))


def _run(val: float, tta: float | None, seconds: float, params: int, epochs: int = 15) -> record.Run:
    """A trained run's record with the given validation accuracies (from 10,000 predictions)."""
    def evaluation(acc):
        return record.Evaluation({"loss": 0.3}, *_predictions(10_000, round(acc * 10_000)))

    evaluations = {"val": evaluation(val), **({"val_tta": evaluation(tta)} if tta is not None else {})}
    history = record.History({"val": {"acc": [0.8] * epochs}}, np.zeros(0), [0.1] * epochs)
    config = type("Config", (), {"epochs": epochs})()
    return record.Run("run", config, history, evaluations, {}, record.Meta(seconds, "cpu", params))


def test_bonus_table_shows_seeds_and_spread_and_no_wall_time():
    baseline = [_run(0.9, None, 60.0, 29066, epochs=20)]
    steps = {"a": [_run(0.91, 0.92, 120.0, 1234)], "b": [_run(0.93, 0.94, 600.0, 1234), _run(0.95, 0.96, 720.0, 1234)]}
    lines = tables.bonus_table(steps, baseline).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    assert [c["step"] for c in cells] == ["Part 2 CNN", "a", "b"]
    assert cells[0]["epochs"] == "20" and cells[0]["params"] == "29,066" and cells[0]["val acc, flip avg."] == "-"
    assert cells[1]["val acc"] == "91.00%"
    assert cells[2]["seeds"] == "2" and cells[2]["val acc"] == "94.00% ± 1.41" and cells[2]["val acc, flip avg."] == "95.00% ± 1.41"
    assert "min/run" not in header  # wall times measured under different machine load are not compared
