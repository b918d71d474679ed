"""Part 3's final runs: the two-head net and its single-task baselines retrained on all 60,000
training canvases, from several seeds, at the learning rate the sweep chose on the held-out split.

The sweep (`hw3.experiments.multimnist`) trains on 50,000 canvases and picks the learning rate on
the 10,000 held-out ones. Once that choice is made, the held-out canvases have done their job: the
final models train on both parts (the 60,000 canvases the assignment asks for, each built from MNIST
training images only) and are evaluated once, on the 10,000 test canvases. Their per-epoch curves
are on the test canvases too (recorded as `test`), since no held-out split is left; nothing is
chosen from them (the number of epochs is the sweep's).

A module of its own, so that adding these runs leaves the sweep's, the analysis's and the
single-task entries current.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hw3.nn import data, models
from hw3.nn.multimnist_data import HEADS, multimnist_splits
from hw3.experiments.multimnist import SWEEP, MultiMNISTConfig, OneHead, best_on_validation, run_multimnist
from hw3.experiments.skeleton import train_and_record
from hw3.store.cached import RunSettings, experiment

TASKS = ("both", *HEADS)  # the multi-task net, then the single-task baselines


def all_training_canvases(pair_seed: int) -> tuple[dict[str, tuple[torch.Tensor, ...]], dict[str, float]]:
    """(x, left, right) for 'train' (the sweep's 50,000 training canvases, then its 10,000 held-out
    ones: 60,000) and 'test' (10,000), x normalised with the 60,000 training canvases' statistics."""
    splits = multimnist_splits(pair_seed)
    train = tuple(torch.cat([a, b]) for a, b in zip(splits.train, splits.val))
    pixels = data.to_float(train[0])
    norm = {"mean": pixels.mean().item(), "std": pixels.std().item()}

    def ready(split):
        x = data.to_float(split[0]).sub_(norm["mean"]).div_(norm["std"])
        return (x, split[1], split[2])

    return {"train": ready(train), "test": ready(splits.test)}, norm


@dataclass(frozen=True)
class FinalConfig:
    """One final Part 3 run: `task` 'both' (the two-head net) or 'left'/'right' (one head only)."""

    task: str
    seed: int = 0
    epochs: int = 10  # the sweep's
    batch_size: int = 64
    pair_seed: int = 0
    precision: str = "fp32"
    sweep: tuple[MultiMNISTConfig, ...] = SWEEP  # the learning rate is the one these runs pick on validation


@experiment("multimnist-final", depends=lambda config: [(run_multimnist, c) for c in config.sweep])
def run_final(config: FinalConfig, settings: RunSettings, upstream: dict[str, dict]) -> dict:
    """Train on all 60,000 training canvases with the sweep's chosen learning rate; curves and final metrics on test."""
    if config.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {config.task!r}")
    chosen = best_on_validation(upstream)
    lr = upstream[chosen]["config"]["lr"]
    sets, norm = all_training_canvases(config.pair_seed)
    if config.task == "both":
        make_model, heads = models.MultiMNISTNet, HEADS
    else:
        column = 1 + HEADS.index(config.task)
        sets = {split: (t[0], t[column]) for split, t in sets.items()}
        make_model, heads = (lambda: OneHead(config.task)), ("label",)
    # train_and_record validates on sets['val'] each epoch; with no held-out split left, that is the
    # test set, and the curves are renamed to say so.
    result = train_and_record(config, settings, {"train": sets["train"], "val": sets["test"], "test": sets["test"]},
                              make_model, lambda model, _: (torch.optim.Adam(model.parameters(), lr=lr), None),
                              heads=heads, evaluate_on=("test",))
    result["history"]["epochs"]["test"] = result["history"]["epochs"].pop("val")
    result.update(normalization=norm, lr=lr, chosen=chosen, train_size=len(sets["train"][0]))
    return result


SEEDS = (0, 1, 2)
FINAL = tuple(FinalConfig(task=t, seed=s) for t in TASKS for s in SEEDS)
FINAL_GROUPS = {t: tuple(c for c in FINAL if c.task == t) for t in TASKS}  # seed groups, by task
