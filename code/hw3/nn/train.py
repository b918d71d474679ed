"""The training engine shared by every experiment: fit a model on in-memory tensors, record history.

Tasks are described by their heads. A single-label classifier has one head; the MultiMNIST net
returns one logit tensor per head, and the objective is the mean of the heads' cross-entropies.
Metrics per split: `loss` (the objective) and `acc`; with several heads also `loss_<head>`,
`acc_<head>` and `acc_all` (every head right).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hw3.nn.data import TensorBatches

Tensors = tuple[torch.Tensor, ...]  # (x, target_1, ..., target_H)
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def pick_device(requested: str | None = None) -> torch.device:
    """'cuda' when available unless told otherwise; the same code runs on both."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was requested but CUDA is not available here")
    return torch.device(requested)


def _channels_last(model: nn.Module) -> bool:
    """Put conv nets in channels-last layout: on CPU their convolutions run ~2× faster (`make bench`, benchmarks/bench.py)."""
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return False
    # evaluate runs in inference mode, where converted weights would become inference
    # tensors that autograd refuses: training the model afterwards would fail.
    with torch.inference_mode(False):
        model.to(memory_format=torch.channels_last)
    return True


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _as_heads(output: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The model's logits as a tuple of heads, in at least float32: under bf16 autocast the losses
    and softmaxes are computed in float32, and a float64 model keeps its float64 logits."""
    heads = (output,) if isinstance(output, torch.Tensor) else tuple(output)
    return tuple(z.float() if z.dtype in (torch.bfloat16, torch.float16) else z for z in heads)


@dataclass
class Objective:
    """Mean cross-entropy over the heads, with optional label smoothing (training only)."""

    heads: tuple[str, ...] = ("label",)
    label_smoothing: float = 0.0

    def __call__(self, logits: tuple[torch.Tensor, ...], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(logits) != len(self.heads) or len(targets) != len(self.heads):
            raise ValueError(f"expected {len(self.heads)} heads {self.heads}, got {len(logits)} outputs and {len(targets)} targets")
        losses = [F.cross_entropy(z, t, label_smoothing=self.label_smoothing) for z, t in zip(logits, targets)]
        return torch.stack(losses).mean()


def _metric_names(heads: tuple[str, ...]) -> list[str]:
    if len(heads) == 1:
        return ["loss", "acc"]
    return ["loss", *(f"loss_{h}" for h in heads), *(f"acc_{h}" for h in heads), "acc_all"]


class _Tally:
    """Sums of per-head losses and hit counts, kept on the device so the loop never syncs with the host."""

    def __init__(self, heads: tuple[str, ...], device: torch.device):
        self.heads = heads
        self.loss = torch.zeros(len(heads), dtype=torch.float64, device=device)
        self.hits = torch.zeros(len(heads), dtype=torch.float64, device=device)
        self.all_hits = torch.zeros((), dtype=torch.float64, device=device)
        self.n = 0

    def add(self, logits: tuple[torch.Tensor, ...], targets: Sequence[torch.Tensor]) -> None:
        b = targets[0].shape[0]
        right = torch.stack([z.argmax(1) == t for z, t in zip(logits, targets)])  # H×B
        self.loss += torch.stack([F.cross_entropy(z.float(), t, reduction="sum") for z, t in zip(logits, targets)]).double()
        self.hits += right.sum(1).double()
        self.all_hits += right.all(0).sum().double()
        self.n += b

    def result(self) -> dict[str, float]:
        loss = (self.loss / self.n).tolist()
        acc = (self.hits / self.n).tolist()
        if len(self.heads) == 1:
            return {"loss": loss[0], "acc": acc[0]}
        out = {"loss": float(np.mean(loss))}
        out.update({f"loss_{h}": v for h, v in zip(self.heads, loss)})
        out.update({f"acc_{h}": v for h, v in zip(self.heads, acc)})
        out["acc_all"] = self.all_hits.item() / self.n
        return out


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str):
    """fp32, or bf16 autocast (matmuls and convolutions in bf16, reductions and the loss in fp32).

    bf16 pays on CPUs with bf16 units (AMX or AVX512-BF16) and on GPUs; elsewhere it can be slower.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def eval_batch_size(device: torch.device) -> int:
    """Evaluation batch size. On CPU, 64 measured 1.2–1.8× faster than 256 and about 2× faster than
    2048 on both CPUs we used (AMD EPYC and Intel Xeon: a small batch's activations stay in cache;
    `make bench` prints the figures); GPUs want large batches."""
    return 4096 if device.type == "cuda" else 64


@dataclass(frozen=True)
class Scores:
    """One evaluation pass: the metrics, and (when kept) the predicted class of every example."""

    metrics: dict[str, float]
    predicted: np.ndarray | None = None  # uint8, shape (N,), or (heads, N) for a multi-head model


@torch.inference_mode()
def evaluate(model: nn.Module, data: Tensors, heads: tuple[str, ...] = ("label",), batch_size: int | None = None,
             tta_flip: bool = False, precision: str = "fp32", keep_predictions: bool = False) -> Scores:
    """Loss (unsmoothed cross-entropy) and accuracy of `model` on `data`, in eval mode, without gradients;
    with `keep_predictions`, also each example's predicted class, from the same forward passes."""
    batch_size = batch_size or eval_batch_size(data[0].device)
    was_training = model.training
    model.eval()
    cl = _channels_last(model)
    tally = _Tally(heads, data[0].device)
    predicted = []
    for batch in TensorBatches(data, batch_size, shuffle=False):
        x, targets = _layout(batch[0], cl), batch[1:]
        with autocast(x.device, precision):
            logits = _as_heads(model(x))
            if tta_flip or keep_predictions:
                probs = [z.softmax(1) for z in logits]
            if tta_flip:  # average the softmax of the image and its mirror image
                probs = [(p + f.softmax(1)) / 2 for p, f in zip(probs, _as_heads(model(x.flip(-1))))]
                logits = tuple(p.log() for p in probs)
        tally.add(logits, targets)
        if keep_predictions:
            predicted.append(torch.stack([p.argmax(1) for p in probs]).cpu())
    model.train(was_training)
    if not keep_predictions:
        return Scores(tally.result())
    classes = torch.cat(predicted, dim=1).to(torch.uint8).numpy()
    return Scores(tally.result(), classes[0] if len(classes) == 1 else classes)


@dataclass
class History:
    """Everything a run records, as plain CPU data (lists and numpy arrays)."""

    step_loss: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    epochs: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # split → metric → per-epoch values
    lr: list[float] = field(default_factory=list)  # learning rate at the end of each epoch

    def as_dict(self) -> dict:
        return {"step_loss": self.step_loss, "epochs": self.epochs, "lr": self.lr}


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, train: Tensors, *, epochs: int, batch_size: int, seed: int,
        evals: dict[str, Tensors] | None = None, heads: tuple[str, ...] = ("label",), label_smoothing: float = 0.0,
        augment: Augment | None = None, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        progress: Callable[[int, dict], None] | None = None,
        precision: str = "fp32") -> History:
    """Train for `epochs` passes over `train`, evaluating on each of `evals` after every epoch.

    The tensors must already be on the model's device. `seed` fixes the batch order and the
    augmentation draws (the model's initialisation is the caller's, before building the model).
    The train metrics are averaged over the epoch's mini-batches, in train mode, as they go.
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    autocast(train[0].device, precision)  # reject an unknown precision before any work
    device = train[0].device
    objective = Objective(heads, label_smoothing)
    shuffle_gen = torch.Generator().manual_seed(seed)
    augment_gen = torch.Generator(device=device).manual_seed(seed + 1)
    batches = TensorBatches(train, batch_size, shuffle=True, generator=shuffle_gen)
    history = History(epochs={split: {m: [] for m in _metric_names(heads)} for split in ("train", *(evals or {}))})
    step_losses = torch.zeros(epochs * len(batches), device=device)
    step = 0
    cl = _channels_last(model)
    model.train()
    for epoch in range(epochs):
        tally = _Tally(heads, device)
        for batch in batches:
            x, targets = batch[0], batch[1:]
            if augment is not None:
                x = augment(x, augment_gen)
            x = _layout(x, cl)
            with autocast(device, precision):
                logits = _as_heads(model(x))
                loss = objective(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:  # stepped per mini-batch (the bonus's one-cycle schedule)
                scheduler.step()
            step_losses[step] = loss.detach()
            with torch.no_grad():
                tally.add(tuple(z.detach() for z in logits), targets)
            step += 1
        record = {"train": tally.result()}
        record.update({name: evaluate(model, data, heads, precision=precision).metrics for name, data in (evals or {}).items()})
        for split, metrics in record.items():
            for metric, value in metrics.items():
                history.epochs[split][metric].append(value)
        history.lr.append(optimizer.param_groups[0]["lr"])
        if progress is not None:
            progress(epoch, record)
    history.step_loss = step_losses.cpu().numpy()
    return history


def state_dict_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's weights as CPU numpy arrays: loads anywhere, needs neither CUDA nor torch's unpickler."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state_dict_numpy(model: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model
