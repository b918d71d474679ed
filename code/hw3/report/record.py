"""Stored results as typed records: what the tables, the figures, the prose and the CLI read.

The store keeps plain data (dicts of lists and numpy arrays, as `experiments.skeleton` writes
them), so that no recompute is ever needed for a change of presentation. This module is the only
place that knows that layout: everything above it reads attributes.

An accuracy has one derivation: the stored per-image predictions against the labels. Its
interval, its paired tests and the number in the table all come from the same boolean array.
(The training loop's running counts give the same value; `tests/test_record.py` checks that on
every cached run.) Losses cannot be recomputed from predictions, so they are the evaluation pass's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hw3.experiments import bonus, fashion, multimnist, registry
from hw3.report import stats


@dataclass(frozen=True)
class History:
    """What a run recorded while training: per-epoch metrics by split, per-step loss, learning rate."""

    epochs: Mapping[str, Mapping[str, list[float]]]  # split ('train', 'val') → metric → one value per epoch
    step_loss: np.ndarray  # training loss of every step
    lr: list[float]  # learning rate at the end of each epoch

    def __call__(self, split: str, metric: str = "loss") -> np.ndarray:
        """One metric per epoch, as floats: `history("val", "acc")`."""
        return np.asarray(self.epochs[split][metric], dtype=float)

    @property
    def n_epochs(self) -> int:
        return len(self.lr)

    def last(self, split: str, metric: str = "loss") -> float:
        return float(self(split, metric)[-1])

    def best_epoch(self, metric: str = "loss", split: str = "val") -> int:
        """Epoch (1-based) with the lowest loss, or the highest accuracy."""
        values = self(split, metric)
        return int(np.nanargmin(values) if "loss" in metric else np.nanargmax(values)) + 1

    def first_epoch_reaching(self, accuracy: float, split: str = "val") -> int | None:
        """First epoch (1-based) whose accuracy is at least `accuracy`, or None."""
        reached = np.flatnonzero(self(split, "acc") >= accuracy)
        return int(reached[0]) + 1 if reached.size else None


@dataclass(frozen=True)
class Evaluation:
    """A trained model on one split: its loss from the evaluation pass, and its prediction for every image."""

    losses: Mapping[str, float]  # 'loss' (mean over heads) and, with several heads, 'loss_<head>'
    predicted: np.ndarray  # (N,) classes, or (heads, N)
    labels: np.ndarray  # the same shape
    heads: tuple[str, ...] = ("label",)

    @property
    def loss(self) -> float:
        return float(self.losses["loss"])

    def head_loss(self, head: str) -> float:
        return float(self.losses[f"loss_{head}"])

    def correct(self, head: str | None = None) -> np.ndarray:
        """Per image: is the prediction right? With several heads, `head` picks one; None means every head right."""
        if len(self.heads) == 1:
            return self.predicted == self.labels
        if head is None:
            return (self.predicted == self.labels).all(0)
        h = self.heads.index(head)
        return self.predicted[h] == self.labels[h]

    def accuracy(self, head: str | None = None) -> stats.Accuracy:
        """Accuracy with its 95% Wilson interval, from the predictions."""
        return stats.accuracy(self.correct(head))

    @property
    def acc(self) -> float:
        return self.accuracy().value


@dataclass(frozen=True)
class Meta:
    """How the run was computed. The wall time and the threads come from meta.json (the store keeps
    them out of output.joblib, so that a bit-identical recompute leaves it byte-identical); the
    device and the parameter count from the output."""

    wall_time_s: float  # the training loop's own time (meta.json's train_time_s)
    device: str
    num_parameters: int
    threads: int | None = None

    @classmethod
    def of(cls, stored: Mapping, entry: Mapping | None) -> Meta:
        """From the output's "meta" dict and the entry's meta.json; older outputs still hold wall time and threads."""
        inner, entry = dict(stored.get("meta", {})), entry or {}
        wall = entry.get("train_time_s", inner.get("wall_time_s", entry.get("wall_time_s")))
        threads = entry.get("threads", inner.get("threads"))
        return cls(float(wall) if isinstance(wall, (int, float)) else float("nan"), inner["device"], inner["num_parameters"],
                   threads if isinstance(threads, int) else None)


@dataclass(frozen=True)
class Run:
    """One trained model's stored result: its config, history, evaluations per split, weights and meta."""

    name: str
    config: Any  # the frozen config it was loaded by
    history: History
    evaluations: Mapping[str, Evaluation]  # 'val', 'test', and the flip-averaged 'val_tta' where recorded
    weights: Mapping[str, np.ndarray]
    meta: Meta
    normalization: Mapping[str, float] | None = None  # mean and std of the training pixels, where recorded

    def on(self, split: str) -> Evaluation:
        """The evaluation on `split`: `run.on("test").acc`."""
        if split not in self.evaluations:
            raise KeyError(f"{self.name} was not evaluated on {split!r}; it has {', '.join(self.evaluations)}")
        return self.evaluations[split]

    @property
    def label(self) -> str:
        """How tables and figures name the run: its optimiser (Part 2), its step (bonus), else its name."""
        if isinstance(self.config, fashion.FashionConfig):
            return fashion.optimizer_label(self.config)
        return getattr(self.config, "label", self.name)

    @classmethod
    def from_stored(cls, name: str, config: Any, stored: dict, entry: Mapping | None = None) -> Run:
        """`stored`: the output; `entry`: its meta.json (for the wall time and the threads)."""
        heads = tuple(k.removeprefix("acc_") for k in next(iter(stored["final"].values())) if k.startswith("acc_") and k != "acc_all") \
            or ("label",)
        evaluations = {split: Evaluation({k: v for k, v in metrics.items() if k.startswith("loss")},
                                         stored["predictions"][split], stored["labels"][split.removesuffix("_tta")], heads)
                       for split, metrics in stored["final"].items()}
        h = stored["history"]
        return cls(name, config, History(h["epochs"], np.asarray(h["step_loss"]), list(h["lr"])), evaluations,
                   stored["state_dict"], Meta.of(stored, entry), stored.get("normalization"))


# ----------------------------------------------------------------------------------------------
# The outputs of the analysis experiments (no training of their own), one record each


@dataclass(frozen=True)
class Gallery:
    """Sample images: FashionMNIST, the same images permuted, and MultiMNIST canvases with their digits."""

    fashion_images: np.ndarray
    fashion_labels: np.ndarray
    fashion_permuted: np.ndarray
    permutation: np.ndarray
    normalization: Mapping[str, float]
    multimnist_images: np.ndarray
    multimnist_left: np.ndarray
    multimnist_right: np.ndarray


@dataclass(frozen=True)
class DataCheck:
    """Split sizes and one batch's shape and type, for FashionMNIST and MultiMNIST."""

    fashion: Mapping[str, dict]
    multimnist: Mapping[str, dict]


@dataclass(frozen=True)
class FinalTest:
    """The bonus's one test-set evaluation: the step validation chose, and its models (one per seed) on the test set."""

    chosen: str
    tta: bool
    seeds: list[int]
    val_acc: list[float]
    tests: list[Evaluation]  # one per seed, in `seeds` order
    confusion: np.ndarray  # of the first seed's model
    misclassified: Mapping[str, np.ndarray]  # its first mistakes: 'images', 'true', 'predicted'

    @classmethod
    def from_stored(cls, stored: dict) -> FinalTest:
        _one_of(stored["chosen"], {c.label for c in bonus.RUNS}, "bonus-final's chosen step")
        labels = stored["labels"]["test"]
        tests = [Evaluation({"loss": t["loss"]}, p, labels) for t, p in zip(stored["test"], stored["predictions"]["test"])]
        return cls(stored["chosen"], stored["tta"], list(stored["seeds"]), list(stored["val_acc"]), tests,
                   stored["confusion"], stored["misclassified"])


@dataclass(frozen=True)
class DigitAnalysis:
    """Part 3: which digit is harder, per class, and how much ink the two digits share."""

    chosen: str
    per_class_acc: Mapping[str, list[float]]
    ink_covered: Mapping[str, float]
    ink_in_overlap: Mapping[str, float]


@dataclass(frozen=True)
class DeadUnits:
    """For each diverged Part 2 model: live units per ReLU layer and split, and the classes it predicts."""

    live: Mapping[str, Mapping[str, list[tuple[int, int]]]]  # model → split → (live, units) per layer
    classes_predicted: Mapping[str, Mapping[str, list[int]]]  # model → split → count per class

    @classmethod
    def from_stored(cls, stored: dict) -> DeadUnits:
        live = {m: {s: v for s, v in per.items() if s != "classes_predicted"} for m, per in stored.items()}
        return cls(live, {m: per["classes_predicted"] for m, per in stored.items()})


def _one_of(value: Any, allowed: set[str], what: str) -> None:
    """The report prints these names as written: a received cache may only name a registered run (no markup)."""
    if value not in allowed:
        raise ValueError(f"{what} is {str(value)[:80]!r}, not one of the registered runs {sorted(allowed)}")


def _digit_analysis(stored: dict) -> DigitAnalysis:
    _one_of(stored["chosen"], {multimnist.run_multimnist.name(c) for c in multimnist.SWEEP}, "multimnist-analysis's chosen run")
    return DigitAnalysis(**stored)


_RECORDS = {"bonus-final": FinalTest.from_stored, "dead-units": DeadUnits.from_stored,
            "gallery": lambda d: Gallery(**d), "data-check": lambda d: DataCheck(**d),
            "multimnist-analysis": _digit_analysis}


def as_record(experiment, config: Any, stored: dict, stored_entry: bool = True):
    """The record of `config`'s output (a `Run` for every trained model); its meta.json is read only
    for a stored output (`stored_entry`), never for one computed now."""
    if experiment.prefix in _RECORDS:
        return _RECORDS[experiment.prefix](stored)
    return Run.from_stored(experiment.name(config), config, stored, experiment.read_meta(config) if stored_entry else None)


def load(config: Any):
    """The current stored result of a registered config, as its record; under RETRAIN, the result
    the notebook's own code computes now (`hw3.report.retrain`).

    Under HW3_CACHE_ONLY=1 a missing or stale entry is a CacheMissError that says why.
    """
    from hw3.report import retrain  # it imports this module's layer mates; imported here to keep record light

    experiment = registry.experiment_of(config)
    if retrain.active():
        return as_record(experiment, config, retrain.active().output(experiment, config), stored_entry=False)
    _say_if_edited()
    return as_record(experiment, config, experiment(config))


_checked: set = set()


def _say_if_edited() -> None:
    """One line per notebook cell when stored results are shown beside edited listing cells."""
    from hw3.report import notebook

    cell = _cell_number()
    if cell is not None and cell in _checked:
        return
    _checked.add(cell)
    changed = notebook.edited()
    if changed:
        print(f"Note: these are stored results, computed by the package's code; this notebook's "
              f"{', '.join(f'`{n}`' for n in changed)} differ(s) from it, so they are not the edited code's results. "
              "Set RETRAIN = True in the first cell to compute them with the notebook's code.")


def _cell_number() -> int | None:
    """The running notebook cell's execution count (None outside IPython)."""
    try:
        return get_ipython().execution_count  # type: ignore[name-defined]  # noqa: F821 (IPython's builtin)
    except NameError:
        return None
