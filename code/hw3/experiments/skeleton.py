"""The skeleton every training experiment shares: seed, build, fit, evaluate, record.

An experiment supplies its data, how to build its model and optimiser, and its options; this
module does the rest the same way for all of them, and returns the result as plain CPU data:
curves, final metrics, per-sample predictions (so the report can run paired tests without
retraining), weights as numpy arrays, and timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from hw3.nn import train
from hw3.nn.models import count_parameters
from hw3.nn.train import evaluate, fit
from hw3.store.cached import RunSettings

Sets = dict[str, tuple[torch.Tensor, ...]]  # split → (x, target_1, ..., target_H)
OptimizerFactory = Callable[[nn.Module, int], tuple[torch.optim.Optimizer, Any]]  # (model, steps/epoch) → (optimizer, scheduler)


def _labels(split: tuple[torch.Tensor, ...]) -> np.ndarray:
    targets = torch.stack(split[1:]).to(torch.uint8).cpu().numpy()
    return targets[0] if len(targets) == 1 else targets


def train_and_record(config: Any, settings: RunSettings, sets: Sets, make_model: Callable[[], nn.Module],
                     make_optimizer: OptimizerFactory, *, heads: tuple[str, ...] = ("label",),
                     evaluate_on: tuple[str, ...] = ("val", "test"), tta: bool = False, label_smoothing: float = 0.0,
                     augment: train.Augment | None = None) -> dict:
    """Train `make_model()` (seeded with `config.seed`) on sets['train'], validating on sets['val'] each epoch.

    `config` needs `seed`, `epochs`, `batch_size` and `precision`. The final metrics and the
    predictions cover `evaluate_on`, and with `tta` also their flip-averaged versions ('val_tta', ...).
    """
    started = time.perf_counter()
    device = train.pick_device(settings.device)
    sets = {split: tuple(t.to(device) for t in tensors) for split, tensors in sets.items()}
    torch.manual_seed(config.seed)
    model = make_model().to(device)
    steps_per_epoch = -(-len(sets["train"][0]) // config.batch_size)
    optimizer, scheduler = make_optimizer(model, steps_per_epoch)
    history = fit(model, optimizer, sets["train"], epochs=config.epochs, batch_size=config.batch_size,
                  seed=config.seed, evals={"val": sets["val"]}, heads=heads, label_smoothing=label_smoothing,
                  augment=augment, scheduler=scheduler, progress=settings.progress, precision=config.precision)
    final, predicted = {}, {}
    for split in evaluate_on:
        for suffix, flip in (("", False), ("_tta", True)) if tta else (("", False),):
            scores = evaluate(model, sets[split], heads, tta_flip=flip, precision=config.precision, keep_predictions=True)
            final[split + suffix], predicted[split + suffix] = scores.metrics, scores.predicted
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": final,
        "predictions": predicted,
        "labels": {split: _labels(sets[split]) for split in evaluate_on},
        "state_dict": train.state_dict_numpy(model),
        "meta": {"wall_time_s": time.perf_counter() - started, "device": device.type, "threads": torch.get_num_threads(),
                 "num_parameters": count_parameters(model)},
    }
