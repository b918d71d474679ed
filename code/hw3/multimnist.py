"""Part 3: MultiMNIST — two MNIST digits on one 36×36 canvas, and the multi-task experiment.

x1 sits at the top-left [0:28, 0:28], x2 at the bottom-right [8:36, 8:36]; where they overlap
([8:28, 8:28]) the canvas takes the pixel-wise max, so the right digit's strokes are drawn over
the left one's exactly as much as the left one's are drawn over the right one's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from . import data, models, train
from .cache import experiment
from .experiments import current_device, current_progress

CANVAS = 36
DIGIT = 28
OFFSET = CANVAS - DIGIT  # 8
HEADS = ("left", "right")


def _check_digits(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape[-2:] != (DIGIT, DIGIT):
        raise ValueError(f"{name} must be a 28×28 MNIST image (28×28 or 1×28×28, or N×28×28 when batched), got shape {tuple(x.shape)}")
    return x


def make_new_samples(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Batched `make_new_sample`: …×28×28 and …×28×28 (same shape) → …×36×36, one canvas per pair."""
    _check_digits(x1, "x1"), _check_digits(x2, "x2")
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    left = x1.new_zeros(*x1.shape[:-2], CANVAS, CANVAS)
    right = left.clone()
    left[..., :DIGIT, :DIGIT] = x1
    right[..., OFFSET:, OFFSET:] = x2
    return torch.maximum(left, right)


def make_new_sample(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """One MultiMNIST image: x1 top-left, x2 bottom-right, max on the overlap.

    Each digit is 28×28 or 1×28×28; the canvas is 36×36, or 1×36×36 when x1 has a channel dim.
    """
    for x, name in ((x1, "x1"), (x2, "x2")):
        _check_digits(x, name)
        if tuple(x.shape) not in ((DIGIT, DIGIT), (1, DIGIT, DIGIT)):
            raise ValueError(f"{name} must be 28×28 or 1×28×28, got shape {tuple(x.shape)}; use make_new_samples for batches")
    canvas = make_new_samples(x1.reshape(DIGIT, DIGIT), x2.reshape(DIGIT, DIGIT).to(x1.dtype))
    return canvas.unsqueeze(0) if x1.ndim == 3 else canvas


def random_pairs(n_images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent seeded permutations of range(n_images): pair i is (left[i], right[i]).

    Each image is used exactly once on the left and once on the right. Pairs may share a class
    (about 1 in 10), and an image may rarely pair with itself (about once per dataset, as for any
    random permutation's fixed points); both are harmless, and we keep them rather than bias the draw.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_images, generator=gen), torch.randperm(n_images, generator=gen)


@dataclass(frozen=True)
class MultiSplits:
    """Canvases (uint8 N×36×36) with left and right labels, for train / val / test."""

    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _paired(images: torch.Tensor, labels: torch.Tensor, seed: int):
    left, right = random_pairs(len(images), seed)
    return make_new_samples(images[left], images[right]), labels[left].clone(), labels[right].clone()


def multimnist_splits(pair_seed: int = 0, split_seed: int = 0) -> MultiSplits:
    """60,000 training canvases from MNIST train (50,000 train + 10,000 validation) and 10,000 test canvases from MNIST test.

    The 60k MNIST training images are split 50k/10k first and each part is paired within itself,
    so no digit image appears in both a training and a validation canvas; test canvases use only
    MNIST test images.
    """
    train_images, train_labels = data.load_raw("MNIST", train=True)
    test_images, test_labels = data.load_raw("MNIST", train=False)
    train_idx, val_idx = data.train_val_indices(len(train_images), 10_000, split_seed)
    return MultiSplits(
        train=_paired(train_images[train_idx], train_labels[train_idx], pair_seed),
        val=_paired(train_images[val_idx], train_labels[val_idx], pair_seed + 1),
        test=_paired(test_images, test_labels, pair_seed + 2),
    )


def as_tensor_dataset(split: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.utils.data.TensorDataset:
    """The homework's TensorDataset(images, left_labels, right_labels), images float N×1×36×36 in [0, 1]."""
    images, left, right = split
    return torch.utils.data.TensorDataset(data.to_float(images), left, right)


def prepared(pair_seed: int, device: torch.device) -> tuple[dict[str, tuple[torch.Tensor, ...]], dict[str, float]]:
    """(x, left, right) per split on `device`, x as floats normalised with the training canvases' statistics."""
    splits = multimnist_splits(pair_seed)
    pixels = data.to_float(splits.train[0])
    norm = {"mean": pixels.mean().item(), "std": pixels.std().item()}

    def ready(split):
        x = data.to_float(split[0]).sub_(norm["mean"]).div_(norm["std"])
        return tuple(t.to(device) for t in (x, split[1], split[2]))

    return {"train": ready(splits.train), "val": ready(splits.val), "test": ready(splits.test)}, norm


@dataclass(frozen=True)
class MultiMNISTConfig:
    """One Part 3 run: the shared-encoder, two-head net trained on the mean of the two cross-entropies."""

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    pair_seed: int = 0

    @property
    def name(self) -> str:
        return f"multimnist-{self.optimizer}-lr{self.lr:g}-e{self.epochs}"


@experiment
def run_multimnist(config: MultiMNISTConfig) -> dict:
    """Train the two-head net; record per-task curves (train, val) and final val/test metrics."""
    if config.optimizer != "adam":
        raise ValueError(f"only 'adam' is implemented for MultiMNIST, got {config.optimizer!r}")
    started = time.perf_counter()
    device = train.pick_device(current_device())
    sets, norm = prepared(config.pair_seed, device)
    torch.manual_seed(config.seed)
    model = models.MultiMNISTNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = train.fit(model, optimizer, sets["train"], epochs=config.epochs, batch_size=config.batch_size,
                        seed=config.seed, evals={"val": sets["val"]}, heads=HEADS, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {split: train.evaluate(model, sets[split], HEADS) for split in ("val", "test")},
        "normalization": norm,
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }


# Learning rates tried; the report picks the one with the best validation both-right accuracy.
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
SWEEP = tuple(MultiMNISTConfig(lr=lr) for lr in LEARNING_RATES)


def best_on_validation(results: dict[str, dict]) -> str:
    """Name of the run whose final validation both-right accuracy is highest (test is not looked at)."""
    return max(results, key=lambda name: results[name]["final"]["val"]["acc_all"])


@dataclass(frozen=True)
class AnalysisConfig:
    """Why one digit is harder: ink statistics of the test canvases and the chosen model's per-class accuracy."""

    sweep: tuple[MultiMNISTConfig, ...] = SWEEP
    ink_threshold: float = 0.5

    @property
    def name(self) -> str:
        return "multimnist-analysis"


@experiment
def run_multimnist_analysis(config: AnalysisConfig) -> dict:
    """Per-class test accuracy of each head for the run chosen on validation, and how the two digits' ink overlaps."""
    results = {c.name: run_multimnist(c) for c in config.sweep}  # cached: loads, does not retrain
    chosen = best_on_validation(results)
    result = results[chosen]
    images, _ = data.load_raw("MNIST", train=False)
    left_idx, right_idx = random_pairs(len(images), config.sweep[0].pair_seed + 2)  # as in multimnist_splits
    digits = data.to_float(images)[:, 0]
    left, right = (torch.zeros(len(images), CANVAS, CANVAS) for _ in range(2))
    left[:, :DIGIT, :DIGIT], right[:, OFFSET:, OFFSET:] = digits[left_idx], digits[right_idx]
    left_ink, right_ink = left > config.ink_threshold, right > config.ink_threshold
    both = (left_ink & right_ink).sum((1, 2)).float()
    square = slice(OFFSET, DIGIT)
    x, y_left, y_right = prepared(config.sweep[0].pair_seed, torch.device("cpu"))[0]["test"]
    model = train.load_state_dict_numpy(models.MultiMNISTNet(), result["state_dict"]).eval()
    with torch.inference_mode():
        logits = [torch.cat(parts) for parts in zip(*(model(xb) for xb in x.split(train.eval_batch_size(x.device))))]
    per_class = {}
    for head, z, y in (("left", logits[0], y_left), ("right", logits[1], y_right)):
        right_pred = (z.argmax(1) == y).float()
        per_class[head] = [right_pred[y == k].mean().item() for k in range(10)]
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
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    pair_seed: int = 0

    @property
    def name(self) -> str:
        return f"multimnist-{self.task}-only-lr{self.lr:g}-e{self.epochs}"


class _OneHead(torch.nn.Module):
    """MultiMNISTNet with only one head in use (the other gets no gradient and is not counted)."""

    def __init__(self, task: str):
        super().__init__()
        net = models.MultiMNISTNet()
        self.encoder, self.head = net.encoder, getattr(net, f"{task}_head")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@experiment
def run_single_task(config: SingleTaskConfig) -> dict:
    """Train encoder + one head on one digit's labels; record val curves and final val/test metrics."""
    if config.task not in HEADS:
        raise ValueError(f"task must be one of {HEADS}, got {config.task!r}")
    started = time.perf_counter()
    device = train.pick_device(current_device())
    column = 1 + HEADS.index(config.task)  # (x, left, right): keep x and this task's labels
    sets = {split: (t[0], t[column]) for split, t in prepared(config.pair_seed, device)[0].items()}
    torch.manual_seed(config.seed)
    model = _OneHead(config.task).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = train.fit(model, optimizer, sets["train"], epochs=config.epochs, batch_size=config.batch_size,
                        seed=config.seed, evals={"val": sets["val"]}, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {split: train.evaluate(model, sets[split]) for split in ("val", "test")},
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }


# Single-task baselines at the learning rate the multi-task sweep picks on validation (1e-3).
SINGLE_TASK = tuple(SingleTaskConfig(task=t) for t in HEADS)
