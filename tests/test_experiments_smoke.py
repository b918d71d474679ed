"""One-epoch smoke run of every registered experiment function, on tiny synthetic IDX data.

FashionMNIST and MNIST are written as random IDX files (a few hundred images) to a temporary
HW3_DATA_DIR, with hw3.nn.data.VAL_SIZE made small; the results go to one temporary cache shared by
this module's tests (so downstream experiments reuse their upstream entries). Each result's schema
is checked, and then that it loads back, equal, in cache-only mode.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pytest

import hw3.nn.data
from hw3.experiments import bonus, fashion, gallery, multimnist, multimnist_final, registry
from hw3.store.cached import RunSettings

N_TRAIN, N_TEST, VAL = 160, 48, 48  # per dataset: 112 train / 48 val / 48 test
SETTINGS = RunSettings(device="cpu")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080N, the dims as big-endian uint32, the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_dataset(root: Path, name: str, seed: int) -> None:
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images, labels = IDX_FILES[prefix]
        (raw / images).write_bytes(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        (raw / labels).write_bytes(idx_bytes(np.arange(n) % 10))  # every class present


@pytest.fixture(scope="module")
def smoke_dirs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smoke")
    write_dataset(root / "data", "FashionMNIST", 0)
    write_dataset(root / "data", "MNIST", 1)
    return root / "data", root / "cache"


@pytest.fixture
def smoke(smoke_dirs, private_cache, monkeypatch) -> Path:
    """The synthetic data and the module's shared cache, in normal (computing) mode."""
    data, cache = smoke_dirs
    monkeypatch.setenv("HW3_DATA_DIR", str(data))
    monkeypatch.setenv("HW3_CACHE_DIR", str(cache))
    monkeypatch.delenv("HW3_CACHE_ONLY", raising=False)
    monkeypatch.setattr(hw3.nn.data, "VAL_SIZE", VAL)
    return cache


# Tiny versions of the registered configs (one epoch; short upstream tuples).
MLP = replace(fashion.fashion_config("mlp", "nesterov"), epochs=1)
CNN = replace(fashion.fashion_config("cnn", "adam"), epochs=1)
PERMUTED = replace(fashion.PERMUTED[0], epochs=1)
DEAD = fashion.DeadUnitsConfig(runs=tuple(replace(c, epochs=1) for c in fashion.DEAD_UNITS.runs))
BONUS_BASE = replace(bonus.ABLATION[0], epochs=1, width=4, batch_size=56)
# The wide net with every option on: onecycle, crop, flip, erasing, label smoothing.
BONUS_AUG = replace(bonus.ABLATION[-1], epochs=1, width=4, batch_size=56, erasing=0.5, label_smoothing=0.1)
BONUS_FINAL = bonus.BonusFinalConfig(runs=(BONUS_BASE, BONUS_AUG), n_misclassified=3)
MULTI = tuple(replace(c, epochs=1) for c in multimnist.SWEEP[:2])
ANALYSIS = multimnist.AnalysisConfig(sweep=MULTI)
SINGLE = replace(multimnist.SINGLE_TASK[1], epochs=1)  # the right digit
FINAL_BOTH = multimnist_final.FinalConfig(task="both", epochs=1, sweep=MULTI)
FINAL_LEFT = multimnist_final.FinalConfig(task="left", epochs=1, sweep=MULTI)


def check_trained(result: dict, *, splits: tuple[str, ...], heads: int = 1, tta: bool = False) -> None:
    """The schema of runs.train_and_record's result."""
    assert {"config", "history", "final", "predictions", "labels", "state_dict", "meta"} <= set(result), (
        f"a trained result has history/final/predictions/labels/state_dict/meta, got {sorted(result)}")
    epochs = result["history"]["epochs"]
    assert set(epochs) == {"train", "val"}, "the history has per-epoch train and val metrics"
    assert all(len(v) == 1 for split in epochs.values() for v in split.values()), "one epoch, one value per metric"
    assert len(result["history"]["lr"]) == 1 and result["history"]["step_loss"].ndim == 1
    expected = set(splits) | ({f"{s}_tta" for s in splits} if tta else set())
    assert set(result["final"]) == expected and set(result["predictions"]) == expected, (
        f"final metrics and predictions cover exactly {sorted(expected)}")
    for split, metrics in result["final"].items():
        acc = metrics["acc_all"] if heads == 2 else metrics["acc"]
        assert 0.0 <= acc <= 1.0 and np.isfinite(metrics["loss"]), f"{split}: accuracy in [0, 1], finite loss"
    n = {"val": VAL, "test": N_TEST}
    for split, predicted in result["predictions"].items():
        base = split.removesuffix("_tta")
        shape = (n[base],) if heads == 1 else (2, n[base])
        assert predicted.dtype == np.uint8 and predicted.shape == shape, (
            f"predictions[{split}] are uint8 of shape {shape}, got {predicted.dtype} {predicted.shape}")
        assert result["labels"][base].dtype == np.uint8 and result["labels"][base].shape == shape, (
            f"labels[{base}] are uint8 of the predictions' shape")
        assert predicted.max() < 10, "predicted classes are digits 0-9"
    accuracy = result["final"][splits[0]]["acc_all" if heads == 2 else "acc"]
    hits = (result["predictions"][splits[0]] == result["labels"][splits[0]])
    assert accuracy == pytest.approx(float((hits.all(0) if heads == 2 else hits).mean())), (
        "the recorded accuracy is that of the recorded predictions")
    assert result["state_dict"] and all(isinstance(v, np.ndarray) for v in result["state_dict"].values()), (
        "weights are stored as numpy arrays")
    meta = result["meta"]
    assert meta["device"] == "cpu" and meta["num_parameters"] > 0
    assert "wall_time_s" not in meta and "threads" not in meta, "run facts live in meta.json, not in the output"


def check_gallery(r: dict) -> None:
    g = gallery.GALLERY
    assert r["fashion_images"].shape == (g.n_fashion, 28, 28) and r["fashion_permuted"].shape == (g.n_fashion, 28, 28)
    assert 0.0 <= r["fashion_images"].min() and r["fashion_images"].max() <= 1.0 + 1e-5, "images back in [0, 1]"
    assert sorted(r["permutation"].tolist()) == list(range(784)), "the permutation is a bijection of the 784 pixels"
    np.testing.assert_allclose(r["fashion_permuted"].reshape(g.n_fashion, -1),
                               r["fashion_images"].reshape(g.n_fashion, -1)[:, r["permutation"]], atol=1e-5,
                               err_msg="the permuted images are the stored images, permuted")
    assert r["multimnist_images"].shape == (g.n_multimnist, 36, 36)
    assert r["multimnist_left"].shape == r["multimnist_right"].shape == (g.n_multimnist,)


def check_data_check(r: dict) -> None:
    b = gallery.DATA_CHECK.batch_size
    sizes = {"train": N_TRAIN - VAL, "val": VAL, "test": N_TEST}
    for split, n in sizes.items():
        f = r["fashion"][split]
        assert f["images"] == n and f["batches"] == -(-n // b), f"FashionMNIST {split}: {n} images in ceil(n / {b}) batches"
        assert f["x"][0] == (min(b, n), 1, 28, 28) and f["y"][0] == (min(b, n),), f"FashionMNIST {split}: one batch's shapes"
        m = r["multimnist"][split]
        assert m["canvases"] == n and m["x"][0] == (1, 36, 36), f"MultiMNIST {split}: {n} canvases of 1×36×36"


def check_dead_units(r: dict) -> None:
    assert set(r) == {c.model for c in DEAD.runs}, "one entry per diverged model"
    for model, per_split in r.items():
        for split in ("train", "val", "test"):
            assert all(0 <= alive <= units for alive, units in per_split[split]), f"{model} {split}: live ≤ units"
        assert {s: sum(v) for s, v in per_split["classes_predicted"].items()} == {"val": VAL, "test": N_TEST}, (
            "the class histogram counts every prediction")


def check_bonus_final(r: dict) -> None:
    assert r["chosen"] in {BONUS_BASE.label, BONUS_AUG.label} and isinstance(r["tta"], bool)
    n_seeds = sum(c.label == r["chosen"] for c in BONUS_FINAL.runs)
    assert len(r["seeds"]) == len(r["test"]) == len(r["val_acc"]) == n_seeds, "one test evaluation per seed of the chosen step"
    assert r["predictions"]["test"].shape == (n_seeds, N_TEST) and r["predictions"]["test"].dtype == np.uint8
    assert r["labels"]["test"].shape == (N_TEST,) and r["labels"]["test"].dtype == np.uint8
    assert r["confusion"].shape == (10, 10) and r["confusion"].sum() == N_TEST, "the confusion matrix counts every test image"
    assert len(r["misclassified"]["images"]) <= BONUS_FINAL.n_misclassified
    assert (r["misclassified"]["true"] != r["misclassified"]["predicted"]).all(), "the misclassified examples are mistakes"


def check_analysis(r: dict) -> None:
    assert r["chosen"] in {multimnist.run_multimnist.name(c) for c in MULTI}, "the chosen run is one of the sweep's"
    assert set(r["per_class_acc"]) == {"left", "right"} and all(len(v) == 10 for v in r["per_class_acc"].values())
    for key in ("ink_covered", "ink_in_overlap"):
        assert all(0.0 <= v <= 1.0 for v in r[key].values()), f"{key} are shares"


def check_final(result: dict, heads: int) -> None:
    """A final MultiMNIST run: trained on every training canvas (train + held out), curves and metrics on test only."""
    assert set(result["history"]["epochs"]) == {"train", "test"}, "no held-out split is left: the curves are on test"
    assert set(result["final"]) == set(result["predictions"]) == set(result["labels"]) == {"test"}
    assert result["train_size"] == N_TRAIN, "all the training canvases, the sweep's validation ones included"
    assert result["lr"] in {c.lr for c in MULTI} and result["chosen"] in {multimnist.run_multimnist.name(c) for c in MULTI}
    shape = (N_TEST,) if heads == 1 else (2, N_TEST)
    assert result["predictions"]["test"].shape == result["labels"]["test"].shape == shape
    key = "acc" if heads == 1 else "acc_all"
    hits = result["predictions"]["test"] == result["labels"]["test"]
    assert result["final"]["test"][key] == pytest.approx(float((hits if heads == 1 else hits.all(0)).mean()))


CASES = [
    pytest.param(gallery.run_gallery, gallery.GALLERY, check_gallery, id="gallery"),
    pytest.param(gallery.run_data_check, gallery.DATA_CHECK, check_data_check, id="data-check"),
    pytest.param(fashion.run_fashion, MLP, lambda r: check_trained(r, splits=("val", "test")), id="fashion-mlp"),
    pytest.param(fashion.run_fashion, CNN, lambda r: check_trained(r, splits=("val", "test")), id="fashion-cnn"),
    pytest.param(fashion.run_fashion, PERMUTED, lambda r: check_trained(r, splits=("val", "test")), id="fashion-permuted"),
    pytest.param(fashion.run_dead_units, DEAD, check_dead_units, id="dead-units"),
    pytest.param(bonus.run_bonus, BONUS_AUG, lambda r: check_trained(r, splits=("val",), tta=True), id="bonus"),
    pytest.param(bonus.run_bonus_final, BONUS_FINAL, check_bonus_final, id="bonus-final"),
    pytest.param(multimnist.run_multimnist, MULTI[0], lambda r: check_trained(r, splits=("val", "test"), heads=2), id="multimnist"),
    pytest.param(multimnist.run_multimnist_analysis, ANALYSIS, check_analysis, id="multimnist-analysis"),
    pytest.param(multimnist.run_single_task, SINGLE, lambda r: check_trained(r, splits=("val", "test")), id="single-task"),
    pytest.param(multimnist_final.run_final, FINAL_BOTH, lambda r: check_final(r, heads=2), id="multimnist-final-both"),
    pytest.param(multimnist_final.run_final, FINAL_LEFT, lambda r: check_final(r, heads=1), id="multimnist-final-left"),
]


def test_every_registered_experiment_function_is_smoke_tested():
    registered = {exp for exp, _ in registry.all_experiments()}
    tested = {case.values[0] for case in CASES}
    assert registered == tested, f"experiment functions without a smoke test: {sorted(map(repr, registered - tested))}"


@pytest.mark.parametrize("exp, config, check", CASES)
def test_experiment_runs_and_reloads_in_cache_only_mode(exp, config, check, smoke, monkeypatch):
    result = exp(config, SETTINGS)
    check(result)
    assert (exp.folder(config) / "output.joblib").is_file(), f"{exp.name(config)} wrote its entry"
    assert exp.read_meta(config)["output_hash"] == joblib.hash(result), "the entry's recorded hash is the result's"
    if isinstance(result.get("meta"), dict):  # a trained run: its wall time and threads are in meta.json
        entry = exp.read_meta(config)
        assert entry["train_time_s"] > 0 and entry["threads"] >= 1, entry
    data_files = exp.read_meta(config)["data"]
    assert data_files and all(f.endswith("-ubyte") for f in data_files), f"the entry records the IDX files it read: {data_files}"

    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    status = exp.status(config)
    assert status.state == "cached", f"{exp.name(config)} is current right after computing it: {status}"
    again = exp(config)
    assert joblib.hash(again) == joblib.hash(result), "in cache-only mode the stored result loads back equal"
