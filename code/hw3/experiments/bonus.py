"""Bonus (2.6): a stronger FashionMNIST model, built one decision at a time and chosen on validation.

Each ablation step keeps the previous step and adds a group of changes (a schedule with weight
decay, an augmentation, a wider network, a regulariser); from crops and flips on, each step is trained from three seeds. The runs report
validation accuracy only. `run_bonus_final` picks the step with the best mean validation accuracy
(with or without test-time flip averaging) and evaluates that step's models on the test set, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from hw3.nn import data, models, train
from hw3.nn.augment import Augmentation
from hw3.experiments.skeleton import train_and_record
from hw3.store.cached import RunSettings, experiment


@dataclass(frozen=True)
class BonusConfig:
    """One ablation step. `label` names the changes this step adds."""

    label: str
    model: str = "bn-cnn"       # a key of `models.BONUS_MODELS`
    width: int = 16             # channels of the first layer
    batchnorm: bool = True
    dropout: float = 0.0
    optimizer: str = "sgd-nesterov"
    lr: float = 0.01            # the peak learning rate when schedule == "onecycle"
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "onecycle"
    crop_padding: int = 0
    hflip: bool = False
    erasing: float = 0.0
    label_smoothing: float = 0.0
    epochs: int = 15
    batch_size: int = 128
    seed: int = 0
    precision: str = "bf16"  # several times faster than fp32 on CPUs with bf16 units (`make bench` prints the ratio)


def _optimizer(config: BonusConfig, model: torch.nn.Module, steps_per_epoch: int):
    # No weight decay on BatchNorm scales and biases: decaying them only fights the normalisation.
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd-nesterov":
        opt = torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    elif config.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=config.lr)
    else:
        raise ValueError(f"optimizer must be 'sgd-nesterov' or 'adamw', got {config.optimizer!r}")
    if config.schedule == "constant":
        return opt, None
    if config.schedule == "onecycle":
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.25)
    raise ValueError(f"schedule must be 'constant' or 'onecycle', got {config.schedule!r}")


def build_model(config: BonusConfig) -> torch.nn.Module:
    """The network a step trains (seed torch first)."""
    if config.model not in models.BONUS_MODELS:
        raise ValueError(f"model must be one of {sorted(models.BONUS_MODELS)}, got {config.model!r}")
    return models.BONUS_MODELS[config.model](config.width, config.batchnorm, config.dropout)


@experiment("bonus", code=lambda config: [models.BONUS_MODELS[config.model]])
def run_bonus(config: BonusConfig, settings: RunSettings) -> dict:
    """Train one ablation step on the 50k training split; evaluate on validation only (plain and flip-averaged)."""
    splits = data.image_splits("FashionMNIST")
    fill = -splits.mean / splits.std  # a black pixel after normalisation
    augment = Augmentation(config.crop_padding, config.hflip, config.erasing, fill)
    return train_and_record(config, settings, {"train": splits.train, "val": splits.val},
                            lambda: build_model(config),
                            lambda model, steps: _optimizer(config, model, steps), evaluate_on=("val",), tta=True,
                            label_smoothing=config.label_smoothing, augment=augment if augment.active else None)


# The ablation ladder: each step keeps everything above it and adds the changes its label names.
_base = BonusConfig(label="bn-cnn")
_onecycle = replace(_base, label="onecycle-wd", lr=0.1, weight_decay=5e-4, schedule="onecycle")
_augment = replace(_onecycle, label="crop-flip", crop_padding=2, hflip=True)
_wide = replace(_augment, label="wide", model="wide", width=32)
_smoothing = replace(_wide, label="smoothing", label_smoothing=0.1)
ABLATION = (_base, _onecycle, _augment, _wide, _smoothing)


# From crops and flips on, each step is trained from three seeds, so that its difference from the
# step before can be set against seed noise; the first two steps, clearly behind, from one seed (CPU time).
SEEDS = (0, 1, 2)
RUNS = tuple(replace(step, seed=seed) for i, step in enumerate(ABLATION) for seed in (SEEDS if i >= 2 else SEEDS[:1]))


@dataclass(frozen=True)
class BonusFinalConfig:
    """Select a step of `runs` on mean validation accuracy, then evaluate its seeds' models on the test set once."""

    runs: tuple[BonusConfig, ...] = RUNS
    n_misclassified: int = 12


def choose(results: dict[str, dict]) -> tuple[str, bool]:
    """(label of the best step, whether flip averaging helps it), by mean validation accuracy over seeds alone."""
    by_step: dict[tuple[str, bool], list[float]] = {}
    for r in results.values():
        for key in ("val", "val_tta"):
            by_step.setdefault((r["config"]["label"], key == "val_tta"), []).append(r["final"][key]["acc"])
    (label, tta), _ = max(by_step.items(), key=lambda item: float(np.mean(item[1])))
    return label, tta


@experiment("bonus-final", depends=lambda config: [(run_bonus, c) for c in config.runs],
            code=lambda config: [models.BONUS_MODELS[c.model] for c in config.runs])
def run_bonus_final(config: BonusFinalConfig, settings: RunSettings, upstream: dict[str, dict]) -> dict:
    """The bonus's only test-set evaluation: the chosen step's models, one per seed; confusion and mistakes of the first."""
    label, tta = choose(upstream)
    chosen = [(c, upstream[run_bonus.name(c)]) for c in config.runs if c.label == label]
    splits = data.image_splits("FashionMNIST")
    x_test, y_test = splits.test
    truth = y_test.numpy()
    tests, predicted = [], []
    for c, r in chosen:
        model = train.load_state_dict_numpy(build_model(c), r["state_dict"])
        scores = train.evaluate(model, splits.test, tta_flip=tta, precision=c.precision, keep_predictions=True)
        tests.append(scores.metrics)
        predicted.append(scores.predicted)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (truth, predicted[0]), 1)
    wrong = np.flatnonzero(predicted[0] != truth)[: config.n_misclassified]
    return {
        "chosen": label,
        "tta": tta,
        "seeds": [c.seed for c, _ in chosen],
        "val_acc": [r["final"]["val_tta" if tta else "val"]["acc"] for _, r in chosen],
        "test": tests,
        "predictions": {"test": np.stack(predicted)},
        "labels": {"test": truth.astype(np.uint8)},
        "confusion": confusion,
        "misclassified": {"images": (x_test[wrong, 0] * splits.std + splits.mean).numpy(), "true": truth[wrong], "predicted": predicted[0][wrong]},
    }


FINAL = BonusFinalConfig()
