"""Batched data augmentation for N×C×H×W tensors, seeded by a torch.Generator.

The torchvision equivalents (RandomCrop(28, padding=p), RandomHorizontalFlip(), RandomErasing())
work on one image at a time; these draw every sample's randomness at once and apply it with a
gather or a mask, so augmenting a batch costs about as much as copying it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"augmentations expect an N×C×H×W tensor, got {getattr(x, 'shape', type(x).__name__)}")


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """Pad by `padding` (with `fill`) and crop back to H×W at a random offset per sample (a shift of ±padding)."""
    _check_batch(x)
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4, value=fill)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # N×1×H×1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # N×1×1×W
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    _check_batch(x)
    flip = (torch.rand(x.shape[0], generator=gen, device=gen.device) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erasing(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, max_frac: float = 0.4, fill: float = 0.0) -> torch.Tensor:
    """With probability p, set a random rectangle (each side up to max_frac of the image) to `fill`."""
    _check_batch(x)
    n, _, h, w = x.shape
    dev = gen.device

    def draw(size: int):
        side = (torch.rand(n, generator=gen, device=dev) * max_frac * size).long() + 1
        start = (torch.rand(n, generator=gen, device=dev) * (size - side + 1)).long()
        return start.to(x.device), (start + side).to(x.device)

    y0, y1 = draw(h)
    x0, x1 = draw(w)
    apply = (torch.rand(n, generator=gen, device=dev) < p).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    box = (ys >= y0[:, None, None]) & (ys < y1[:, None, None]) & (xs >= x0[:, None, None]) & (xs < x1[:, None, None])
    mask = (box & apply[:, None, None])[:, None]  # N×1×H×W
    return x.masked_fill(mask, fill)


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations to apply, in this order: crop, flip, erase. `fill` is the background value
    after normalisation (a black pixel), so padding and erasing look like the dataset's background."""

    crop_padding: int = 0
    hflip: bool = False
    erasing: float = 0.0
    fill: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.hflip or self.erasing)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, gen, self.fill)
        if self.hflip:
            x = random_hflip(x, gen)
        if self.erasing:
            x = random_erasing(x, gen, p=self.erasing, fill=self.fill)
        return x
