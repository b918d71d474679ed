"""Bonus (2.6): a stronger FashionMNIST model, built one decision at a time and chosen on validation.

Each ablation step is one cached run that adds one decision to the previous step. The runs
report validation accuracy only. `run_bonus_final` then picks the best step on validation
(with or without test-time flip averaging) and evaluates that one model on the test set, once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from . import data, models, train
from .augment import Augmentation
from .cache import experiment
from .experiments import current_device, current_progress


@dataclass(frozen=True)
class BonusConfig:
    """One ablation step. `label` names the decision this step adds."""

    label: str
    width: int = 16
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

    @property
    def name(self) -> str:
        return f"bonus-{self.label}"


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


@experiment
def run_bonus(config: BonusConfig) -> dict:
    """Train one ablation step on the 50k training split; evaluate on validation only (plain and flip-averaged)."""
    started = time.perf_counter()
    device = train.pick_device(current_device())
    splits = data.image_splits("FashionMNIST")
    fill = -splits.mean / splits.std  # a black pixel after normalisation
    augment = Augmentation(config.crop_padding, config.hflip, config.erasing, fill)
    torch.manual_seed(config.seed)
    model = models.BonusCNN(config.width, config.batchnorm, config.dropout).to(device)
    train_set, val = tuple(t.to(device) for t in splits.train), tuple(t.to(device) for t in splits.val)
    optimizer, scheduler = _optimizer(config, model, -(-len(train_set[0]) // config.batch_size))
    history = train.fit(model, optimizer, train_set, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                        evals={"val": val}, label_smoothing=config.label_smoothing,
                        augment=augment if augment.active else None, scheduler=scheduler,
                        progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, val), "val_tta": train.evaluate(model, val, tta_flip=True)},
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }


# The ablation ladder: each step keeps everything above it and adds one decision.
_base = BonusConfig(label="bn-cnn")
_onecycle = replace(_base, label="onecycle-wd", lr=0.1, weight_decay=5e-4, schedule="onecycle")
_augment = replace(_onecycle, label="crop-flip", crop_padding=2, hflip=True)
_regularise = replace(_augment, label="erasing-smoothing", erasing=0.5, label_smoothing=0.1)
ABLATION = (_base, _onecycle, _augment, _regularise)


@dataclass(frozen=True)
class BonusFinalConfig:
    """Select among `ablation` on validation, then evaluate the chosen model on the test set once."""

    ablation: tuple[BonusConfig, ...] = ABLATION
    n_misclassified: int = 12

    @property
    def name(self) -> str:
        return "bonus-final"


def choose(results: dict[str, dict]) -> tuple[str, bool]:
    """(name of the best step, whether flip averaging helps it), by validation accuracy alone."""
    candidates = [(r["final"][k]["acc"], name, k == "val_tta") for name, r in results.items() for k in ("val", "val_tta")]
    _, name, tta = max(candidates)
    return name, tta


@experiment
def run_bonus_final(config: BonusFinalConfig) -> dict:
    """The single test-set evaluation of the bonus: confusion matrix and some misclassified images."""
    ablation = {c.name: run_bonus(c) for c in config.ablation}  # cached runs: loads, does not retrain
    name, tta = choose(ablation)
    chosen = next(c for c in config.ablation if c.name == name)
    splits = data.image_splits("FashionMNIST")
    model = train.load_state_dict_numpy(models.BonusCNN(chosen.width, chosen.batchnorm, chosen.dropout), ablation[name]["state_dict"])
    x_test, y_test = splits.test
    predicted = train.predictions(model, x_test, tta_flip=tta)
    truth = y_test.numpy()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    wrong = np.flatnonzero(predicted != truth)[: config.n_misclassified]
    return {
        "chosen": name,
        "tta": tta,
        "val_acc": ablation[name]["final"]["val_tta" if tta else "val"]["acc"],
        "test": train.evaluate(model, splits.test, tta_flip=tta),
        "confusion": confusion,
        "misclassified": {"images": (x_test[wrong, 0] * splits.std + splits.mean).numpy(), "true": truth[wrong], "predicted": predicted[wrong]},
    }


FINAL = BonusFinalConfig()
