"""Every experiment in the report: a frozen config, a cached runner, and the registry `make results` walks.

A config holds everything that changes the result (model, optimiser, epochs, batch size, seed, ...)
and nothing that doesn't (the device). Its `name` is how the CLI, the cache-miss errors and the
report refer to it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from . import data, models, train
from .cache import experiment


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

    @property
    def optimizer_label(self) -> str:
        if self.optimizer == "sgd":
            return f"SGD+Nesterov({self.lr:g}, {self.momentum:g})" if self.nesterov else f"SGD({self.lr:g})"
        return f"Adam({self.lr:g})"

    @property
    def name(self) -> str:
        opt = {"sgd": "sgd", "adam": "adam"}[self.optimizer] + ("-nesterov" if self.nesterov else "")
        suffix = "-permuted" if self.permuted else ""
        return f"{self.model}-{opt}-lr{self.lr:g}{suffix}"


def make_model(name: str) -> torch.nn.Module:
    factories = {"mlp": models.MLP, "cnn": models.CNN}
    if name not in factories:
        raise ValueError(f"model must be one of {sorted(factories)}, got {name!r}")
    return factories[name]()


def make_optimizer(config: FashionConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")


def _on(device: torch.device, split: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in split)


@experiment
def run_fashion(config: FashionConfig) -> dict:
    """Train one Part 2 model for `config.epochs` epochs; record curves, final val/test metrics and weights."""
    started = time.perf_counter()
    device = train.pick_device(current_device())
    splits = data.image_splits("FashionMNIST", permuted=config.permuted)
    torch.manual_seed(config.seed)
    model = make_model(config.model).to(device)
    history = train.fit(model, make_optimizer(config, model.parameters()), _on(device, splits.train),
                        epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                        evals={"val": _on(device, splits.val)}, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, _on(device, splits.val)), "test": train.evaluate(model, _on(device, splits.test))},
        "normalization": {"mean": splits.mean, "std": splits.std},
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }


# The four optimisers of the homework, and the two permuted runs (SGD+Nesterov) of 2.5.
OPTIMIZERS = (
    dict(optimizer="sgd", lr=0.01),
    dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True),
    dict(optimizer="adam", lr=0.01),
    dict(optimizer="adam", lr=1.0),
)
FASHION = tuple(FashionConfig(model=m, **opt) for m in ("mlp", "cnn") for opt in OPTIMIZERS)
PERMUTED = tuple(FashionConfig(model=m, permuted=True, **OPTIMIZERS[1]) for m in ("mlp", "cnn"))


# ----------------------------------------------------------------------------------------------
# Run-time settings that are not part of any config: where to run, and who to tell about progress.
_settings: dict = {"device": None, "progress": None}


def current_device() -> str | None:
    return _settings["device"]


def current_progress():
    return _settings["progress"]


def configure(device: str | None = None, progress=None) -> None:
    """Set the device ('cpu', 'cuda', or None for auto) and an epoch callback for the runs that follow."""
    _settings.update(device=device, progress=progress)
