"""Small cached samples of each dataset, so the report can show images on a machine with no dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import data, multimnist_data
from .store import RunSettings, experiment


@dataclass(frozen=True)
class GalleryConfig:
    n_fashion: int = 16
    n_multimnist: int = 5


@experiment("gallery")
def run_gallery(config: GalleryConfig, settings: RunSettings) -> dict:
    """The first training images of FashionMNIST (as stored, and as the permuted runs see them) and of MultiMNIST."""
    splits = data.image_splits("FashionMNIST", permuted=False)
    permuted = data.image_splits("FashionMNIST", permuted=True)
    n, m = config.n_fashion, config.n_multimnist
    canvases = multimnist_data.multimnist_splits().train
    return {
        "fashion_images": (splits.train[0][:n, 0] * splits.std + splits.mean).numpy(),  # back to [0, 1]
        "fashion_labels": splits.train[1][:n].numpy(),
        "fashion_permuted": (permuted.train[0][:n, 0] * permuted.std + permuted.mean).numpy(),
        "permutation": permuted.permutation.permutation.numpy(),
        "normalization": {"mean": splits.mean, "std": splits.std},
        "multimnist_images": canvases[0][:m].numpy().astype(np.float32) / 255.0,
        "multimnist_left": canvases[1][:m].numpy(),
        "multimnist_right": canvases[2][:m].numpy(),
    }


GALLERY = GalleryConfig()
