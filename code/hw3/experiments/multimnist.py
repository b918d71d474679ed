"""Part 3's experiments: the shared-encoder two-head net on MultiMNIST, its single-task baselines,
and the analysis of which digit is harder. The canvases come from `hw3.multimnist_data`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hw3.nn import data, models
from hw3.nn.multimnist_data import CANVAS, DIGIT, HEADS, OFFSET, prepared, random_pairs
from hw3.experiments.skeleton import train_and_record
from hw3.store.cached import RunSettings, experiment


def _adam(lr: float):
    return lambda model, _: (torch.optim.Adam(model.parameters(), lr=lr), None)


@dataclass(frozen=True)
class MultiMNISTConfig:
    """One Part 3 run: the shared-encoder, two-head net trained on the mean of the two cross-entropies."""

    lr: float
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    pair_seed: int = 0
    precision: str = "fp32"  # the homework's runs are fp32


@experiment("multimnist")
def run_multimnist(config: MultiMNISTConfig, settings: RunSettings) -> dict:
    """Train the two-head net with Adam; record per-task curves (train, val), final val/test metrics and predictions."""
    sets, norm = prepared(config.pair_seed, torch.device("cpu"))
    result = train_and_record(config, settings, sets, models.MultiMNISTNet, _adam(config.lr), heads=HEADS)
    result["normalization"] = norm
    return result


# Learning rates tried; the one with the best validation both-right accuracy is chosen.
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
SWEEP = tuple(MultiMNISTConfig(lr=lr) for lr in LEARNING_RATES)


def best_on_validation(results: dict[str, dict]) -> str:
    """Name of the run whose final validation both-right accuracy is highest (test is not looked at)."""
    return max(results, key=lambda name: results[name]["final"]["val"]["acc_all"])


@dataclass(frozen=True)
class AnalysisConfig:
    """Why one digit is harder: ink statistics of the test canvases, beside the chosen run's predictions."""

    sweep: tuple[MultiMNISTConfig, ...] = SWEEP
    ink_threshold: float = 0.5


@experiment("multimnist-analysis", depends=lambda config: [(run_multimnist, c) for c in config.sweep])
def run_multimnist_analysis(config: AnalysisConfig, settings: RunSettings, upstream: dict[str, dict]) -> dict:
    """The run chosen on validation, and how the two digits' ink overlaps on the test canvases."""
    chosen = best_on_validation(upstream)
    images, _ = data.load_raw("MNIST", train=False)
    left_idx, right_idx = random_pairs(len(images), config.sweep[0].pair_seed + 2)  # as in multimnist_splits
    digits = data.to_float(images)[:, 0]
    left, right = (torch.zeros(len(images), CANVAS, CANVAS) for _ in range(2))
    left[:, :DIGIT, :DIGIT], right[:, OFFSET:, OFFSET:] = digits[left_idx], digits[right_idx]
    left_ink, right_ink = left > config.ink_threshold, right > config.ink_threshold
    both = (left_ink & right_ink).sum((1, 2)).float()
    square = slice(OFFSET, DIGIT)
    predicted, truth = upstream[chosen]["predictions"]["test"], upstream[chosen]["labels"]["test"]
    per_class = {head: [float(np.mean(predicted[h][truth[h] == k] == k)) for k in range(10)] for h, head in enumerate(HEADS)}
    return {
        "chosen": chosen,
        "per_class_acc": per_class,
        # share of a digit's ink pixels that the other digit's ink also covers
        "ink_covered": {"left": (both / left_ink.sum((1, 2))).mean().item(), "right": (both / right_ink.sum((1, 2))).mean().item()},
        # share of a digit's ink that falls inside the 20×20 overlap square
        "ink_in_overlap": {"left": (left[:, square, square].sum((1, 2)) / left.sum((1, 2))).mean().item(),
                           "right": (right[:, square, square].sum((1, 2)) / right.sum((1, 2))).mean().item()},
    }


ANALYSIS = AnalysisConfig()


@dataclass(frozen=True)
class SingleTaskConfig:
    """The same network and recipe trained on one digit only: the baseline for what sharing buys."""

    task: str  # "left" or "right"
    lr: float
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    pair_seed: int = 0
    precision: str = "fp32"


class OneHead(torch.nn.Module):
    """MultiMNISTNet with only one head in use (the other gets no gradient and is not counted)."""

    def __init__(self, task: str):
        super().__init__()
        net = models.MultiMNISTNet()
        self.encoder, self.head = net.encoder, getattr(net, f"{task}_head")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@experiment("multimnist-single")
def run_single_task(config: SingleTaskConfig, settings: RunSettings) -> dict:
    """Train encoder + one head on one digit's labels; record val curves, final val/test metrics and predictions."""
    if config.task not in HEADS:
        raise ValueError(f"task must be one of {HEADS}, got {config.task!r}")
    column = 1 + HEADS.index(config.task)  # (x, left, right): keep x and this task's labels
    sets = {split: (t[0], t[column]) for split, t in prepared(config.pair_seed, torch.device("cpu"))[0].items()}
    return train_and_record(config, settings, sets, lambda: OneHead(config.task), _adam(config.lr))


# Single-task baselines at the learning rate the multi-task sweep picks on validation (1e-3).
SINGLE_TASK = tuple(SingleTaskConfig(task=t, lr=1e-3) for t in HEADS)
