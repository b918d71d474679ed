"""Small cached samples of each dataset, so the report can show images on a machine with no dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw3.nn import data, multimnist_data
from hw3.store.cached import RunSettings, experiment


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


@dataclass(frozen=True)
class DataCheckConfig:
    batch_size: int = 64


@experiment("data-check")
def run_data_check(config: DataCheckConfig, settings: RunSettings) -> dict:
    """The split sizes the homework asks to check, one batch of each FashionMNIST DataLoader, and the MultiMNIST TensorDatasets."""
    loaders = data.dataloaders(data.image_splits("FashionMNIST"), config.batch_size)
    fashion = {}
    for split, loader in loaders.items():
        x, y = next(iter(loader))
        fashion[split] = {"images": len(loader.dataset), "batches": len(loader), "x": [tuple(x.shape), str(x.dtype)],
                          "y": [tuple(y.shape), str(y.dtype)]}
    canvases = multimnist_data.multimnist_splits()
    multi = {}
    for split in ("train", "val", "test"):
        dataset = multimnist_data.as_tensor_dataset(getattr(canvases, split))
        x, left, right = dataset[0]
        multi[split] = {"canvases": len(dataset), "x": [tuple(x.shape), str(x.dtype)], "labels": [int(left), int(right)]}
    return {"fashion": fashion, "multimnist": multi}


DATA_CHECK = DataCheckConfig()
