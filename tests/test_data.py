"""Datasets: the split, the normalised tensors, the pixel permutation, the batcher, and the failure modes
(missing data offline, truncated or corrupt IDX files)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import hw3.nn.data
from hw3.nn.data import IDX_FILES, DataError, RandomPermutation, TensorBatches, image_splits, load_raw, train_val_indices


@pytest.fixture(autouse=True)
def fresh_load_cache():
    """load_raw reads each (dataset, split, folder) once per process: forget it around every test."""
    hw3.nn.data._load_cached.cache_clear()
    yield
    hw3.nn.data._load_cached.cache_clear()


# --------------------------------------------------------------------------- the split (indices only)


def test_split_sizes_disjoint_and_covering():
    train_idx, val_idx = train_val_indices(60_000, 10_000, seed=0)
    assert len(train_idx) == 50_000 and len(val_idx) == 10_000
    assert train_idx.dtype == torch.int64
    train_set, val_set = set(train_idx.tolist()), set(val_idx.tolist())
    assert len(train_set) == 50_000 and len(val_set) == 10_000  # no repeats
    assert train_set.isdisjoint(val_set)
    assert train_set | val_set == set(range(60_000))


def test_split_is_seeded():
    a, b = train_val_indices(seed=0), train_val_indices(seed=0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = train_val_indices(seed=1)
    assert not torch.equal(a[1], c[1])
    assert set(a[1].tolist()) != set(c[1].tolist())


def test_split_is_random_not_a_slice():
    _, val_idx = train_val_indices(seed=0)
    assert not torch.equal(val_idx.sort().values, torch.arange(50_000, 60_000))


@pytest.mark.parametrize("n_val", [0, -1, 100, 150])
def test_split_rejects_bad_sizes(n_val):
    with pytest.raises(ValueError, match="n_val must be between 1 and n − 1 = 99"):
        train_val_indices(100, n_val)


@pytest.mark.parametrize("n_val", [1, 99])
def test_split_accepts_the_extreme_sizes(n_val):
    train_idx, val_idx = train_val_indices(100, n_val)
    assert len(val_idx) == n_val and len(train_idx) == 100 - n_val


def test_split_defaults_are_the_homeworks_50k_10k_with_seed_0():
    train_idx, val_idx = train_val_indices()
    assert (len(train_idx), len(val_idx)) == (50_000, 10_000)
    assert torch.equal(val_idx, train_val_indices(60_000, 10_000, 0)[1]), "the default seed is 0"


def test_to_float_maps_bytes_to_the_unit_interval():
    images = torch.tensor([[[0, 51], [255, 128]]], dtype=torch.uint8)
    x = hw3.nn.data.to_float(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == 0.0 and x[0, 0, 1, 0] == 1.0 and x[0, 0, 0, 1] == pytest.approx(0.2), "ToTensor divides by 255"


def test_reachable_tries_each_mirror_on_its_port_with_a_timeout(monkeypatch):
    calls = []

    def connect(address, timeout=None):
        calls.append((address, timeout))
        if address[0] != "good.example":
            raise OSError("unreachable")

        class Conn:
            def close(self):
                pass

        return Conn()

    monkeypatch.setattr(socket, "create_connection", connect)
    assert hw3.nn.data._reachable(["https://bad.example/a", "http://bad2.example/b", "http://good.example:8080/c"])
    assert [a for a, _ in calls] == [("bad.example", 443), ("bad2.example", 80), ("good.example", 8080)], "https→443, http→80, explicit port kept, next mirror after a failure"
    assert all(t == hw3.nn.data.NETWORK_TIMEOUT_S for _, t in calls), "every attempt has the short timeout"
    calls.clear()
    assert not hw3.nn.data._reachable(["https://bad.example/a"])


# --------------------------------------------------------------------------- the real data


@pytest.fixture(scope="module")
def plain_splits():
    from conftest import missing_data_reason

    if missing_data_reason():
        pytest.skip(missing_data_reason())
    return image_splits("FashionMNIST")


@pytest.fixture(scope="module")
def permuted_splits(plain_splits):
    return image_splits("FashionMNIST", permuted=True)


@pytest.mark.needs_data
def test_load_raw_real_data(fashion_dir):
    images, labels = load_raw("FashionMNIST", True)
    assert images.shape == (60_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60_000,) and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) == set(range(10))
    test_images, test_labels = load_raw("FashionMNIST", False)
    assert test_images.shape == (10_000, 28, 28) and test_labels.shape == (10_000,)


@pytest.mark.needs_data
def test_image_splits_shapes_and_dtypes(plain_splits):
    for name, size in (("train", 50_000), ("val", 10_000), ("test", 10_000)):
        x, y = getattr(plain_splits, name)
        assert x.shape == (size, 1, 28, 28), name
        assert x.dtype == torch.float32, name
        assert y.shape == (size,) and y.dtype == torch.int64, name
        assert torch.isfinite(x).all(), name
    assert plain_splits.permutation is None


@pytest.mark.needs_data
def test_image_splits_normalisation(plain_splits):
    x_train = plain_splits.train[0].double()
    assert abs(x_train.mean().item()) < 1e-4
    assert abs(x_train.std().item() - 1.0) < 1e-4
    # statistics of the 50k training images only, near FashionMNIST's well-known 0.2860 / 0.3530
    assert plain_splits.mean == pytest.approx(0.286, abs=0.005)
    assert plain_splits.std == pytest.approx(0.353, abs=0.005)
    for name in ("val", "test"):  # normalised with the training statistics: close to, not exactly, 0/1
        x = getattr(plain_splits, name)[0].double()
        assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1.0) < 0.05


@pytest.mark.needs_data
def test_image_splits_follow_the_split_indices(plain_splits):
    images, labels = load_raw("FashionMNIST", True)
    train_idx, val_idx = train_val_indices(60_000, 10_000, 0)
    assert torch.equal(plain_splits.train[1], labels[train_idx])
    assert torch.equal(plain_splits.val[1], labels[val_idx])
    for (x, _), idx in ((plain_splits.train, train_idx[:50]), (plain_splits.val, val_idx[:50])):
        restored = x[:50, 0] * plain_splits.std + plain_splits.mean
        torch.testing.assert_close(restored, images[idx].float() / 255, atol=1e-5, rtol=0)
    test_images, test_labels = load_raw("FashionMNIST", False)
    assert torch.equal(plain_splits.test[1], test_labels)
    torch.testing.assert_close(plain_splits.test[0][:50, 0] * plain_splits.std + plain_splits.mean,
                               test_images[:50].float() / 255, atol=1e-5, rtol=0)


@pytest.mark.needs_data
def test_permuted_splits_scramble_every_set_the_same_way(plain_splits, permuted_splits):
    perm = permuted_splits.permutation
    assert isinstance(perm, RandomPermutation)
    assert torch.equal(perm.permutation, RandomPermutation(784, seed=0).permutation)
    assert permuted_splits.mean == plain_splits.mean and permuted_splits.std == plain_splits.std
    for name in ("train", "val", "test"):
        plain_x, plain_y = getattr(plain_splits, name)
        perm_x, perm_y = getattr(permuted_splits, name)
        assert torch.equal(perm_y, plain_y), name
        assert torch.equal(perm_x[:20], perm(plain_x[:20])), name
        assert torch.equal(perm.inverse(perm_x[-20:]), plain_x[-20:]), name


# --------------------------------------------------------------------------- RandomPermutation


def test_permutation_is_a_bijection():
    perm = RandomPermutation(784, seed=0)
    assert torch.equal(perm.permutation.sort().values, torch.arange(784))
    assert not torch.equal(perm.permutation, torch.arange(784))


def test_permutation_inverse_undoes_it():
    perm = RandomPermutation(784, seed=3)
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(perm.inverse(perm(x)), x)
    assert torch.equal(perm(perm.inverse(x)), x)
    assert not torch.equal(perm(x), x)


def test_permutation_is_seeded():
    assert torch.equal(RandomPermutation(784, 7).permutation, RandomPermutation(784, 7).permutation)
    assert not torch.equal(RandomPermutation(784, 7).permutation, RandomPermutation(784, 8).permutation)


def test_one_instance_maps_pixels_identically_for_every_set():
    """A known image (pixel value = its index) shows the mapping: output pixel j comes from input pixel perm[j]."""
    perm = RandomPermutation(784, seed=0)
    known = torch.arange(784.0).reshape(1, 28, 28)
    assert torch.equal(perm(known).flatten(), perm.permutation.float())
    for n in (1, 3, 8):  # "train", "val", "test" batches of different sizes, image i offset by 1000·i
        batch = known.unsqueeze(0) + 1000.0 * torch.arange(n).reshape(n, 1, 1, 1)
        out = perm(batch)
        for i in range(n):
            assert torch.equal(out[i].flatten() - 1000.0 * i, perm.permutation.float())


def test_permutation_on_chw_and_nchw_shapes():
    perm = RandomPermutation(784, seed=1)
    batch = torch.randn(4, 1, 28, 28)
    out = perm(batch)
    assert out.shape == batch.shape
    for i in range(4):
        single = perm(batch[i])  # C×H×W
        assert single.shape == (1, 28, 28)
        assert torch.equal(single, out[i])
        assert torch.equal(perm(batch[i, 0]), out[i, 0])  # H×W
    assert torch.equal(out.flatten(1).sort(1).values, batch.flatten(1).sort(1).values)  # only moves pixels


def test_permutation_works_on_non_contiguous_and_integer_tensors():
    perm = RandomPermutation(784, seed=2)
    x = torch.randint(0, 255, (2, 1, 28, 28), dtype=torch.uint8)
    t = x.transpose(-1, -2)  # non-contiguous view
    assert torch.equal(perm(t), perm(t.contiguous()))
    assert perm(x).dtype == torch.uint8


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 28, 27), (784,), (10,)])
def test_permutation_wrong_size_names_expected_size(shape):
    perm = RandomPermutation(784)
    with pytest.raises(ValueError, match="784"):
        perm(torch.zeros(shape))


@pytest.mark.parametrize("img", [np.zeros((1, 28, 28)), [[0.0] * 28] * 28, None])
def test_permutation_rejects_non_tensors(img):
    with pytest.raises(TypeError, match=f"expects a tensor .*got {type(img).__name__}$"):
        RandomPermutation(784)(img)


def test_permutation_default_seed_is_0_and_inverse_takes_any_shape():
    assert torch.equal(RandomPermutation(784).permutation, RandomPermutation(784, 0).permutation), "the default seed is 0"
    perm, x = RandomPermutation(784, 1), torch.randn(1, 28, 28)
    assert torch.equal(perm.inverse(perm(x)), x), "inverse undoes the permutation of a C×H×W image"
    assert torch.equal(perm.inverse(perm(x[0])), x[0]), "inverse undoes the permutation of an H×W image"


def test_unseeded_shuffled_batches_are_still_reproducible():
    x = torch.arange(30)
    a = [b[0].tolist() for b in TensorBatches((x,), 7, shuffle=True)]
    torch.manual_seed(123)
    assert a == [b[0].tolist() for b in TensorBatches((x,), 7, shuffle=True)], "without a generator the order is fixed, not global-RNG driven"


def test_permutation_of_one_feature_is_the_identity():
    x = torch.randn(3, 1, 1, 1)
    assert torch.equal(RandomPermutation(1)(x), x)


def test_permutation_acts_on_each_channel_alike():
    """With several channels, each channel's pixels are scrambled by the same permutation."""
    perm = RandomPermutation(16, seed=0)
    x = torch.randn(2, 3, 4, 4)
    out = perm(x)
    for c in range(3):
        assert torch.equal(out[:, c], perm(x[:, c])), f"channel {c}"
    assert torch.equal(perm.inverse(out), x)


@pytest.mark.parametrize("n", [0, -5])
def test_permutation_needs_positive_size(n):
    with pytest.raises(ValueError, match="num_features"):
        RandomPermutation(n)


# --------------------------------------------------------------------------- TensorBatches


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (5, 8), (1, 1)])
def test_batches_cover_every_index_once_per_epoch(n, batch_size):
    idx = torch.arange(n)
    batches = TensorBatches((idx, idx * 10), batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == -(-n // batch_size)
    orders = []
    for _ in range(3):
        got = list(batches)
        assert len(got) == len(batches)
        sizes = [len(b[0]) for b in got]
        assert sizes[:-1] == [batch_size] * (len(got) - 1)
        assert sizes[-1] == (n % batch_size or batch_size)  # the last partial batch is kept
        order = torch.cat([b[0] for b in got])
        assert sorted(order.tolist()) == list(range(n))
        assert torch.equal(torch.cat([b[1] for b in got]), order * 10)  # tensors stay aligned
        orders.append(order.tolist())
    if n >= 10:
        assert orders[0] != orders[1]  # reshuffled every epoch


def test_batches_are_seeded():
    x = torch.arange(50)
    a = [b[0].tolist() for b in TensorBatches((x,), 7, True, torch.Generator().manual_seed(4))]
    b = [b[0].tolist() for b in TensorBatches((x,), 7, True, torch.Generator().manual_seed(4))]
    c = [b[0].tolist() for b in TensorBatches((x,), 7, True, torch.Generator().manual_seed(5))]
    assert a == b and a != c


@pytest.mark.parametrize("n, batch_size", [(10, 3), (64, 64), (100, 32), (7, 10)])
def test_unshuffled_batches_agree_with_dataloader(n, batch_size):
    x, y = torch.randn(n, 1, 4, 4), torch.randint(0, 10, (n,))
    ours = list(TensorBatches((x, y), batch_size, shuffle=False))
    theirs = list(DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False))
    assert len(ours) == len(theirs) == len(TensorBatches((x, y), batch_size, shuffle=False))
    for (xa, ya), (xb, yb) in zip(ours, theirs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_batches_reject_bad_arguments():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorBatches((torch.zeros(5), torch.zeros(4)), 2, shuffle=False)
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches((torch.zeros(5),), 0, shuffle=False)


# --------------------------------------------------------------------------- missing data, offline


@pytest.fixture
def offline(monkeypatch):
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_missing_data_offline_is_a_quick_clear_error(tmp_path, monkeypatch, offline):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("HW3_DATA_DIR", str(data))
    started = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_raw("FashionMNIST", True)
    elapsed = time.perf_counter() - started
    message = str(info.value)
    assert str(data / "FashionMNIST" / "raw") in message
    for name in IDX_FILES:
        assert name in message
    assert "cannot be reached" in message and "HW3_DATA_DIR" in message
    assert f"Expected the four IDX files {', '.join(IDX_FILES)} in {data / 'FashionMNIST' / 'raw'}." in message
    assert "a folder that holds FashionMNIST/raw/" in message
    from torchvision.datasets import FashionMNIST
    assert f"the download mirrors ({', '.join(FashionMNIST.mirrors)})" in message
    assert offline, "the mirrors were not even tried"
    assert elapsed < 10, "hang guard"
    assert list(data.rglob("*")) == []  # nothing half-written left behind


def test_partial_data_offline_names_the_missing_file_and_keeps_the_rest(tmp_path, monkeypatch, offline):
    raw = write_idx_set(tmp_path / "data")
    (raw / "t10k-labels-idx1-ubyte").unlink()
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_raw("FashionMNIST", True)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == sorted([*before, "FashionMNIST", "raw"])


def test_present_data_needs_no_network(tmp_path, monkeypatch, offline):
    raw = write_idx_set(tmp_path / "data")
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "data"))
    assert hw3.nn.data.download("FashionMNIST") == raw
    load_raw("FashionMNIST", True)
    assert offline == []


def test_download_uses_the_given_root_over_the_data_dir(tmp_path, monkeypatch, offline):
    raw = write_idx_set(tmp_path / "given")
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "elsewhere"))
    assert hw3.nn.data.download("FashionMNIST", tmp_path / "given") == raw
    assert offline == [], "files present under the given root: no network needed"


@pytest.mark.parametrize("header", [bytes([0, 0, 8, 1, 0, 0, 0, 0]), bytes([0, 0, 8, 3]) + bytes(4) + bytes([0, 0, 0, 28]) * 2])
def test_empty_idx_files_are_valid(tmp_path, header):
    """An IDX file with zero items is exactly its header: not truncated."""
    path = tmp_path / "empty"
    path.write_bytes(header)
    hw3.nn.data._check_idx(path)


@pytest.mark.parametrize("magic", [bytes([1, 0, 8, 1]), bytes([0, 1, 8, 1])])
def test_idx_magic_needs_two_zero_bytes(tmp_path, magic):
    path = tmp_path / "bad"
    path.write_bytes(magic + bytes([0, 0, 0, 0]))
    with pytest.raises(DataError, match="bad magic"):
        hw3.nn.data._check_idx(path)


def test_unknown_dataset_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_raw("CIFAR10", True)


# --------------------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x000008<ndim>, big-endian u4 dims, then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_idx_set(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """Four small valid FashionMNIST-layout IDX files under root/FashionMNIST/raw; returns that folder."""
    rng = np.random.default_rng(seed)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(rng.integers(0, 10, n)))
    return raw


@pytest.fixture
def synthetic(tmp_path, monkeypatch) -> Path:
    raw = write_idx_set(tmp_path / "data")
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "data"))
    return raw


def test_load_raw_reads_the_files_once_per_process(synthetic, monkeypatch):
    """A second load_raw of the same split does not read the files again, unless they changed on disk."""
    from hw3.nn import data

    images, labels = load_raw("FashionMNIST", True)
    reads = []
    monkeypatch.setattr(data, "read_idx", lambda path: reads.append(path) or np.zeros((1,), np.uint8))
    again, again_labels = load_raw("FashionMNIST", True)
    assert again is images and again_labels is labels and reads == [], "the second load_raw must not read the files again"
    path = synthetic / "train-labels-idx1-ubyte"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # the file changed: what we hash is what we read
    with pytest.raises(Exception):
        load_raw("FashionMNIST", True)
    assert reads, "a changed file must be read again"


def test_load_raw_reads_the_folder_of_the_current_data_dir(tmp_path, monkeypatch):
    """Pointing HW3_DATA_DIR elsewhere loads the other folder's files, not the ones read before."""
    first, second = write_idx_set(tmp_path / "a", seed=1), write_idx_set(tmp_path / "b", seed=2)
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "a"))
    a = load_raw("FashionMNIST", True)[0]
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "b"))
    b = load_raw("FashionMNIST", True)[0]
    assert not torch.equal(a, b), "load_raw must follow HW3_DATA_DIR"
    assert np.array_equal(b.numpy().ravel(), np.frombuffer((second / "train-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8))
    assert first != second


def test_synthetic_idx_files_load(synthetic):
    images, labels = load_raw("FashionMNIST", True)
    expected = np.frombuffer((synthetic / "train-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8)
    assert images.shape == (20, 28, 28) and images.dtype == torch.uint8
    assert np.array_equal(images.numpy().ravel(), expected)
    assert labels.tolist() == list((synthetic / "train-labels-idx1-ubyte").read_bytes()[8:])
    assert load_raw("FashionMNIST", False)[0].shape == (10, 28, 28)


FILES_BY_SPLIT = [(f, f.startswith("train")) for f in IDX_FILES]


@pytest.mark.parametrize("name, train", FILES_BY_SPLIT)
def test_truncated_idx_is_a_data_error_naming_the_file(synthetic, name, train):
    path = synthetic / name
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError) as info:
        load_raw("FashionMNIST", train)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


@pytest.mark.parametrize("name, train", FILES_BY_SPLIT)
def test_idx_with_extra_bytes_is_a_data_error(synthetic, name, train):
    path = synthetic / name
    path.write_bytes(path.read_bytes() + b"\x00" * 3)
    with pytest.raises(DataError, match=name):
        load_raw("FashionMNIST", train)


def test_truncated_inside_header(synthetic):
    path = synthetic / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(DataError, match="truncated inside its header") as info:
        load_raw("FashionMNIST", True)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"<!DOCTYPE html><html>404 Not Found</html>" * 50,  # an error page saved as data
                                     b"\x1f\x8b\x08\x00" + b"\x00" * 100,  # still gzipped
                                     b"\x00\x00\x0d\x03" + b"\x00" * 100,  # IDX of floats, not bytes
                                     b"\x00\x00"])
def test_bad_magic_is_a_data_error_naming_the_file(synthetic, content):
    path = synthetic / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad magic") as info:
        load_raw("FashionMNIST", True)
    assert str(path) in str(info.value)


def test_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    raw = write_idx_set(tmp_path / "data")
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(19)))
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="20 images but 19 labels"):
        load_raw("FashionMNIST", True)


def test_fixing_the_file_after_an_error_works_without_restart(synthetic):
    path = synthetic / "train-images-idx3-ubyte"
    good = path.read_bytes()
    path.write_bytes(good[:-1])
    with pytest.raises(DataError):
        load_raw("FashionMNIST", True)
    path.write_bytes(good)
    assert load_raw("FashionMNIST", True)[0].shape == (20, 28, 28)  # errors are not cached


def test_image_splits_on_synthetic_files(tmp_path, monkeypatch):
    """image_splits on small synthetic IDX files (10,050 training images): the 10k validation split, statistics of the
    training part only, every set normalised with them, labels aligned, and the seeds honoured."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    train_images, test_images = rng.integers(0, 256, (10_050, 28, 28)), rng.integers(0, 128, (7, 28, 28))
    train_labels, test_labels = rng.integers(0, 10, 10_050), rng.integers(0, 10, 7)
    for name, array in (("train-images-idx3-ubyte", train_images), ("train-labels-idx1-ubyte", train_labels),
                        ("t10k-images-idx3-ubyte", test_images), ("t10k-labels-idx1-ubyte", test_labels)):
        (raw / name).write_bytes(idx_bytes(array))
    monkeypatch.setenv("HW3_DATA_DIR", str(tmp_path / "data"))

    splits = image_splits("FashionMNIST", split_seed=3)
    train_idx, val_idx = train_val_indices(10_050, 10_000, 3)
    train_pixels = torch.from_numpy(train_images[train_idx.numpy()] / 255.0)
    assert splits.mean == pytest.approx(train_pixels.mean().item(), rel=1e-5), "mean of the training part's pixels in [0, 1]"
    assert splits.std == pytest.approx(train_pixels.std().item(), rel=1e-4), "std of the training part's pixels in [0, 1]"
    for (x, y), images, labels in ((splits.train, train_images[train_idx.numpy()], train_labels[train_idx.numpy()]),
                                   (splits.val, train_images[val_idx.numpy()], train_labels[val_idx.numpy()]),
                                   (splits.test, test_images, test_labels)):
        expected = (torch.from_numpy(images / 255.0).float()[:, None] - splits.mean) / splits.std
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0, msg="every set is normalised with the training statistics")
        assert torch.equal(y, torch.from_numpy(labels)), "labels stay aligned with their images"
    assert splits.permutation is None

    permuted = image_splits("FashionMNIST", permuted=True, split_seed=3, permutation_seed=5)
    assert torch.equal(permuted.permutation.permutation, RandomPermutation(784, 5).permutation), "permutation_seed is honoured"
    assert torch.equal(permuted.test[0], permuted.permutation(splits.test[0])), "the test set is permuted like the others"
    default = image_splits()
    assert torch.equal(default.val[0], image_splits("FashionMNIST", split_seed=0).val[0]), "defaults: FashionMNIST, split_seed 0"
    assert not torch.equal(default.val[0], splits.val[0])
    other = image_splits("FashionMNIST", split_seed=4)
    assert not torch.equal(other.val[1], splits.val[1]) or not torch.equal(other.val[0], splits.val[0]), "split_seed is honoured"


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_load_raw_records_the_files_it_depends_on_even_from_memory(synthetic, train):
    from hw3.store.fingerprint import recording_data_files

    load_raw("FashionMNIST", train)  # a first read, so that the second is served from memory
    with recording_data_files() as files:
        load_raw("FashionMNIST", train)
    prefix = "train" if train else "t10k"
    assert list(files) == [synthetic / f"{prefix}-images-idx3-ubyte", synthetic / f"{prefix}-labels-idx1-ubyte"], \
        "every experiment must record the data files it read, or a changed file would not make it stale"
