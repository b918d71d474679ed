"""FashionMNIST and MNIST as in-memory tensors, the 50k/10k split, and the batched transforms.

The images are read once from the raw IDX files (<data dir>/<Name>/raw/), by us rather than by
torchvision, so the files we read are the files the store hashes (torchvision would prefer a legacy
`processed/` folder), and are validated (shapes, labels 0-9); they are kept as one uint8 tensor. What torchvision's per-sample `ToTensor()` → `Normalize` → `RandomPermutation`
pipeline does to one PIL image, `prepare` does to the whole N×28×28 tensor at once, so the
training loop only slices ready float tensors.
"""

from __future__ import annotations

import functools
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from hw3.store.fingerprint import counted_if_run, record_data_file, stat_signature
from hw3.environment import data_dir

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DATASETS = ("FashionMNIST", "MNIST")
NETWORK_TIMEOUT_S = 3.0
VAL_SIZE = 10_000  # images held out of each official training set for validation


class DataError(RuntimeError):
    """The dataset is missing, unreachable or corrupt; the message says which file and what to do."""


def _torchvision_class(name: str):
    from torchvision import datasets

    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    return getattr(datasets, name)


def raw_folder(name: str, root: Path | None = None) -> Path:
    return (root or data_dir()) / name / "raw"


def _how_to_get(name: str, folder: Path) -> str:
    return (f"Expected the four IDX files {', '.join(IDX_FILES)} in {folder}. On a machine with internet, "
            f"run `python -m hw3 download` (torchvision's download); offline, copy the four uncompressed files "
            f"there, or point HW3_DATA_DIR at a folder that holds {name}/raw/.")


@counted_if_run  # runs only when files are missing, and downloaded files are hashed: its timeout is no result
def _reachable(urls: list[str]) -> bool:
    """Can we open a TCP connection to any download mirror within a few seconds?"""
    for url in urls:
        parts = urlparse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=NETWORK_TIMEOUT_S).close()
            return True
        except OSError:
            continue
    return False


def download(name: str, root: Path | None = None) -> Path:
    """Make sure <root>/<name>/raw holds the IDX files, downloading with torchvision only if they are missing.

    Offline this fails within seconds. The download goes to a temporary folder first and is moved into
    place only when complete, so an interrupted download leaves no half-written files behind.
    """
    folder = raw_folder(name, root)
    missing = [f for f in IDX_FILES if not (folder / f).is_file()]
    if not missing:
        return folder
    cls = _torchvision_class(name)
    if not _reachable(list(cls.mirrors)):
        raise DataError(f"{name}: missing {missing} in {folder}, and the download mirrors ({', '.join(cls.mirrors)}) "
                        f"cannot be reached (no network?). " + _how_to_get(name, folder))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as tmp:
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # a stalled connection errors instead of hanging forever
        try:
            cls(tmp, train=True, download=True)
            cls(tmp, train=False, download=True)
        except Exception as exc:
            raise DataError(f"{name}: the download failed ({exc}). Nothing was written to {folder}. " + _how_to_get(name, folder)) from exc
        finally:
            socket.setdefaulttimeout(old_timeout)
        for f in IDX_FILES:
            if not (folder / f).is_file():
                shutil.move(str(Path(tmp) / name / "raw" / f), folder / f)
    return folder


def _check_idx(path: Path) -> bytes:
    """Validate an IDX file's header against its size, so corruption is named here, not in a reshape."""
    raw = path.read_bytes()
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number); re-download or re-copy it.")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header; re-download or re-copy it.")
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path} is corrupt or truncated: its header promises {tuple(int(d) for d in dims)} "
                        f"({expected} bytes) but the file has {len(raw)} bytes; re-download or re-copy it.")
    return raw


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file of unsigned bytes (the format torchvision's MNIST reads from raw/)."""
    raw = _check_idx(path)
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _check_arrays(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Shapes N×28×28 and N, labels in 0-9: a bad file is named here, not deep inside training."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{folder}/{prefix}-images-idx3-ubyte holds images of shape {images.shape[1:]}, not 28×28; re-download or re-copy it.")
    if labels.ndim != 1:
        raise DataError(f"{folder}/{prefix}-labels-idx1-ubyte holds a {labels.ndim}-d array, not a vector of labels; re-download or re-copy it.")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: {prefix} has {images.shape[0]} images but {labels.shape[0]} labels; re-download or re-copy it.")
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(f"{folder}/{prefix}-labels-idx1-ubyte has {bad.size} label(s) outside 0-9 (the first, {int(labels[bad[0]])}, "
                        f"at index {int(bad[0])}); re-download or re-copy it.")


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, train: bool, root: str, _signatures: tuple = ()) -> tuple[torch.Tensor, torch.Tensor]:
    # `_signatures` (the files' stat signatures) is only part of the memo key: a changed file is read again.
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    folder = download(name, Path(root))
    prefix = "train" if train else "t10k"
    images, labels = read_idx(folder / f"{prefix}-images-idx3-ubyte"), read_idx(folder / f"{prefix}-labels-idx1-ubyte")
    _check_arrays(folder, prefix, images, labels)
    # What torchvision's MNIST gives from raw/: uint8 images, int64 labels.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_raw(name: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 N×28×28 images, int64 labels) of the official train or test set, read once per process."""
    prefix = "train" if train else "t10k"
    files = [raw_folder(name) / f"{prefix}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1")]
    images, labels = _load_cached(name, train, str(data_dir()), tuple(stat_signature(f) for f in files))
    # Outside the per-process cache, so that every experiment records the files it depends on.
    for path in files:
        record_data_file(path)
    return images, labels


def train_val_indices(n: int = 60_000, n_val: int = 10_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into n − n_val training and n_val validation indices."""
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be between 1 and n − 1 = {n - 1}, got {n_val}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n - n_val], order[n - n_val:]


class RandomPermutation:
    """Shuffle the pixels of an image with one fixed, seeded permutation (torchvision-style transform).

    Takes a C×H×W (or any …×H×W) tensor with H·W == num_features and returns the same shape. It
    must be the last transform, and one instance must be shared by the train, val and test sets, so
    that every image is scrambled the same way. It also accepts a batch N×C×H×W.
    """

    def __init__(self, num_features: int, seed: int = 0):
        if num_features <= 0:
            raise ValueError(f"num_features must be positive, got {num_features}")
        self.num_features = num_features
        self.permutation = torch.randperm(num_features, generator=torch.Generator().manual_seed(seed))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"RandomPermutation expects a tensor (put it after ToTensor), got {type(img).__name__}")
        if img.ndim < 2 or img.shape[-1] * img.shape[-2] != self.num_features:
            raise ValueError(f"RandomPermutation(num_features={self.num_features}) got an image of shape "
                             f"{tuple(img.shape)}; its last two dims must multiply to {self.num_features}")
        flat = img.reshape(*img.shape[:-2], self.num_features)
        return flat[..., self.permutation].reshape(img.shape)

    def inverse(self, img: torch.Tensor) -> torch.Tensor:
        """Undo the permutation (used to check it is a bijection, and to show it)."""
        flat = img.reshape(*img.shape[:-2], self.num_features)
        return flat[..., torch.argsort(self.permutation)].reshape(img.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_features={self.num_features})"


def to_float(images: torch.Tensor) -> torch.Tensor:
    """Batched `ToTensor()`: uint8 N×H×W → float32 N×1×H×W in [0, 1]."""
    return images.unsqueeze(1).float().div_(255.0)


@dataclass(frozen=True)
class Splits:
    """Ready-to-train tensors: x float N×1×28×28 (normalised), y int64, for train/val/test."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    mean: float
    std: float
    permutation: RandomPermutation | None = None


def prepare(images: torch.Tensor, mean: float, std: float, permutation: RandomPermutation | None) -> torch.Tensor:
    """ToTensor → Normalize(mean, std) → [RandomPermutation], applied to the whole uint8 batch at once."""
    x = to_float(images).sub_(mean).div_(std)
    return permutation(x) if permutation is not None else x


def image_splits(name: str = "FashionMNIST", permuted: bool = False, split_seed: int = 0, permutation_seed: int = 0) -> Splits:
    """Train (50k) / val (10k) from the official training set, plus the official test set (10k).

    Normalisation statistics come from the 50k training images only. With `permuted`, one
    RandomPermutation scrambles all three sets identically.
    """
    train_images, train_labels = load_raw(name, train=True)
    test_images, test_labels = load_raw(name, train=False)
    train_idx, val_idx = train_val_indices(len(train_images), VAL_SIZE, split_seed)
    pixels = train_images[train_idx].float().div_(255.0)
    mean, std = pixels.mean().item(), pixels.std().item()
    permutation = RandomPermutation(28 * 28, permutation_seed) if permuted else None

    def split(images, labels):
        return prepare(images, mean, std, permutation), labels.clone()

    return Splits(split(train_images[train_idx], train_labels[train_idx]), split(train_images[val_idx], train_labels[val_idx]),
                  split(test_images, test_labels), mean, std, permutation)


class TensorBatches:
    """Mini-batches of tensors held in memory: our DataLoader.

    The batches of `DataLoader(TensorDataset(*tensors), batch_size, shuffle)` with drop_last=False
    (identical without shuffling; with it, the same kind of uniform random order, drawn from
    `generator`), but one `index_select` per batch instead of collating `batch_size` single samples.
    """

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"all tensors must have the same first dimension, got {[tuple(t.shape) for t in tensors]}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.tensors, self.batch_size, self.shuffle = tensors, batch_size, shuffle
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return -(-self.tensors[0].shape[0] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self.tensors[0].shape[0]
        device = self.tensors[0].device
        # The permutation is drawn on the CPU generator so CPU and CUDA runs see the same order.
        order = torch.randperm(n, generator=self.generator).to(device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield tuple(t[start:start + self.batch_size] for t in self.tensors)
            else:
                idx = order[start:start + self.batch_size]
                yield tuple(t.index_select(0, idx) for t in self.tensors)


def dataloaders(splits: Splits, batch_size: int = 64, seed: int = 0) -> dict[str, torch.utils.data.DataLoader]:
    """torch DataLoaders over the prepared tensors: shuffled training batches, ordered validation and test.

    The training engine iterates `TensorBatches` instead (the same batches without collating one
    sample at a time); these are the conventional loaders.
    """
    from torch.utils.data import DataLoader, TensorDataset

    gen = torch.Generator().manual_seed(seed)
    return {"train": DataLoader(TensorDataset(*splits.train), batch_size=batch_size, shuffle=True, generator=gen),
            "val": DataLoader(TensorDataset(*splits.val), batch_size=batch_size),
            "test": DataLoader(TensorDataset(*splits.test), batch_size=batch_size)}
