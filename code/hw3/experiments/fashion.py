"""Part 2's experiments: the MLP and the CNN on (permuted) FashionMNIST with each optimiser, and the dead-unit count.

A config holds everything that changes the result (model, optimiser, epochs, batch size, seed,
precision, ...) and nothing that doesn't (the device, which `RunSettings` carries). The store names
each run from its non-default fields (`fashion-mlp-sgd-lr0.01`), which is how the CLI, the
cache-miss errors and the report refer to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from hw3.nn import data, models, train
from hw3.store.fingerprint import Table
from hw3.experiments.skeleton import train_and_record
from hw3.store.cached import RunSettings, experiment


@dataclass(frozen=True)
class FashionConfig:
    """One Part 2 run: a model trained on (Permuted)FashionMNIST with one optimiser."""

    model: Literal["mlp", "cnn"]
    optimizer: Literal["sgd", "adam"]
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    permuted: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"  # the homework's runs are fp32


def _sgd(config: FashionConfig, params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def _adam(config: FashionConfig, params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=config.lr)


# The optimisers by `FashionConfig.optimizer`; declared per run (`code=`) like the models, so that a
# new optimiser leaves the existing runs current.
OPTIMIZER_BUILDERS = Table({"sgd": _sgd, "adam": _adam}, name="experiments.OPTIMIZER_BUILDERS")
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}  # how tables and figures name them


def optimizer_label(config: FashionConfig) -> str:
    """'SGD(0.01)', 'SGD+Nesterov(0.01, 0.9)', 'Adam(1)': a run's optimiser as tables and figures show it."""
    name = OPTIMIZER_NAMES.get(config.optimizer, config.optimizer)
    if config.momentum:
        return f"{name}+{'Nesterov' if config.nesterov else 'momentum'}({config.lr:g}, {config.momentum:g})"
    return f"{name}({config.lr:g})"


def make_optimizer(config: FashionConfig, params) -> torch.optim.Optimizer:
    if config.optimizer not in OPTIMIZER_BUILDERS:
        raise ValueError(f"optimizer must be a key of OPTIMIZER_BUILDERS, got {config.optimizer!r}")
    return OPTIMIZER_BUILDERS[config.optimizer](config, params)


@experiment("fashion", code=lambda config: [models.MODELS[config.model], OPTIMIZER_BUILDERS[config.optimizer]])
def run_fashion(config: FashionConfig, settings: RunSettings) -> dict:
    """Train one Part 2 model for `config.epochs` epochs; record curves, final val/test metrics, predictions and weights."""
    splits = data.image_splits("FashionMNIST", permuted=config.permuted)
    result = train_and_record(config, settings, {"train": splits.train, "val": splits.val, "test": splits.test},
                              lambda: models.build(config.model), lambda model, _: (make_optimizer(config, model.parameters()), None))
    result["normalization"] = {"mean": splits.mean, "std": splits.std}
    return result


# The run lists, each named for what it is. A model trains with every optimiser of its own list, so
# an optimiser for one model alone is one line in that list (and its builder above); every count
# the report quotes (optimisers, runs, seeds) is computed from these lists.

# The four optimisers of the homework (2.2), by a short name.
OPTIMIZERS = {
    "sgd": dict(optimizer="sgd", lr=0.01),
    "nesterov": dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True),
    "adam": dict(optimizer="adam", lr=0.01),
    "adam-lr1": dict(optimizer="adam", lr=1.0),
}
MLP_OPTIMIZERS = OPTIMIZERS
CNN_OPTIMIZERS = OPTIMIZERS

MLP_RUNS = tuple(FashionConfig(model="mlp", **opt) for opt in MLP_OPTIMIZERS.values())
CNN_RUNS = tuple(FashionConfig(model="cnn", **opt) for opt in CNN_OPTIMIZERS.values())
FASHION = MLP_RUNS + CNN_RUNS

# 2.5: both models with SGD+Nesterov on permuted pixels, against the same models on the original ones.
MLP_NESTEROV = FashionConfig(model="mlp", **OPTIMIZERS["nesterov"])
CNN_NESTEROV = FashionConfig(model="cnn", **OPTIMIZERS["nesterov"])
MLP_PERMUTED = replace(MLP_NESTEROV, permuted=True)
CNN_PERMUTED = replace(CNN_NESTEROV, permuted=True)
PERMUTED = (MLP_PERMUTED, CNN_PERMUTED)

# Two more seeds of the MLP on original and permuted pixels: the MLP's permutation effect is small,
# so it must be set against seed-to-seed variation (an MLP run takes seconds).
SEEDS = (0, 1, 2)
MLP_NESTEROV_SEEDS = tuple(replace(MLP_NESTEROV, seed=s) for s in SEEDS)
MLP_PERMUTED_SEEDS = tuple(replace(MLP_PERMUTED, seed=s) for s in SEEDS)
MLP_SEEDS = MLP_NESTEROV_SEEDS[1:] + MLP_PERMUTED_SEEDS[1:]  # the seed-0 runs are in MLP_RUNS and PERMUTED

# The two controls the report needs to read the homework's four: momentum without Nesterov's look-ahead
# (is it the look-ahead or the momentum?), and Adam at its usual learning rate (is 0.01 too large?).
CONTROLS = {
    "momentum": dict(optimizer="sgd", lr=0.01, momentum=0.9),
    "adam-lr0.001": dict(optimizer="adam", lr=0.001),
}


def with_seeds(config: FashionConfig) -> tuple[FashionConfig, ...]:
    """`config` trained from each seed of `SEEDS`, seed 0 first (a seed group: one configuration)."""
    return tuple(replace(config, seed=s) for s in SEEDS)


# Every Part 2 configuration from every seed of SEEDS, one group per configuration, keyed by its
# seed-0 config: each model with its own optimisers and the controls, on original pixels, and the
# permuted runs of 2.5. A new optimiser in a model's list gets its seeds here by itself.
MLP_CONFIGS = tuple(FashionConfig(model="mlp", **opt) for opt in (*MLP_OPTIMIZERS.values(), *CONTROLS.values()))
CNN_CONFIGS = tuple(FashionConfig(model="cnn", **opt) for opt in (*CNN_OPTIMIZERS.values(), *CONTROLS.values()))
SEED_GROUPS = {c: tuple(replace(c, seed=s) for s in SEEDS) for c in MLP_CONFIGS + CNN_CONFIGS + PERMUTED}
SEEDED = tuple(c for group in SEED_GROUPS.values() for c in group)

# The two runs that diverge (Adam with lr = 1), whose ReLU units are counted below.
DIVERGED = (FashionConfig(model="mlp", **OPTIMIZERS["adam-lr1"]), FashionConfig(model="cnn", **OPTIMIZERS["adam-lr1"]))


def fashion_config(model: str, optimizer: str, permuted: bool = False) -> FashionConfig:
    """The Part 2 config of `model` trained with the optimiser called `optimizer` in that model's list."""
    optimizers = {"mlp": MLP_OPTIMIZERS, "cnn": CNN_OPTIMIZERS}[model]
    if optimizer not in optimizers:
        raise KeyError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    return FashionConfig(model=model, permuted=permuted, **optimizers[optimizer])


@dataclass(frozen=True)
class DeadUnitsConfig:
    """Which ReLU units still fire in the Adam(lr=1) runs, per layer and per split."""

    runs: tuple[FashionConfig, ...] = DIVERGED


def live_units(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> list[tuple[int, int]]:
    """(units that fire on at least one image, units) for each ReLU of `model`, in order; a conv unit is a channel."""
    fired: dict[int, torch.Tensor] = {}
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]

    def hook(index):
        def record(_module, _inputs, out):
            alive = (out > 0).flatten(2).any(2) if out.ndim == 4 else out > 0  # N×units
            fired[index] = fired.get(index, torch.zeros(alive.shape[1], dtype=torch.bool)) | alive.any(0)
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(relus)]
    model.eval()
    with torch.inference_mode():
        for xb in x.split(batch_size):
            model(xb)
    for h in handles:
        h.remove()
    return [(int(fired[i].sum()), int(fired[i].numel())) for i in range(len(relus))]


@experiment("dead-units", depends=lambda config: [(run_fashion, c) for c in config.runs],
            code=lambda config: [models.MODELS[c.model] for c in config.runs])
def run_dead_units(config: DeadUnitsConfig, settings: RunSettings, upstream: dict[str, dict]) -> dict:
    """For each diverged run: live units per ReLU layer on train/val/test, and how many distinct classes it predicts."""
    splits = data.image_splits("FashionMNIST")
    out = {}
    for c in config.runs:
        result = upstream[run_fashion.name(c)]
        model = train.load_state_dict_numpy(models.build(c.model), result["state_dict"])
        out[c.model] = {split: live_units(model, getattr(splits, split)[0]) for split in ("train", "val", "test")}
        out[c.model]["classes_predicted"] = {s: np.bincount(result["predictions"][s], minlength=10).tolist() for s in ("val", "test")}
    return out


DEAD_UNITS = DeadUnitsConfig()
