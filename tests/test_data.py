"""Tests of distilnas.data: IDX reading, the datasets and their splits, and the tensor loader."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distilnas.data import DATASETS, DataConfig, DataError, TensorLoader, load_dataset
from distilnas.data.datasets import FMNIST_DEFAULT_ROOT, fmnist16_transform, read_idx
from distilnas.data.loader import augment_batch

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530  # the fmnist16 normalisation, as documented


def idx_bytes(arr: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0, 0, 0x08, ndim, big-endian uint32 dims, the data."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# -- IDX --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_plain_and_gzipped(tmp_path, name):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / name, arr))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    assert np.array_equal(out, arr)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    assert np.array_equal(read_idx(write_idx(tmp_path / ("l" + name), labels)), labels)


@pytest.mark.parametrize("content, fragment", [
    (b"", "not an unsigned-byte IDX file"),
    (b"hello world, not idx", "not an unsigned-byte IDX file"),
    (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0", "not an unsigned-byte IDX file"),  # float data
    (bytes([0, 0, 8, 3, 0, 0]), "truncated"),  # header cut short
    (idx_bytes(np.zeros((4, 5), np.uint8))[:-3], "truncated"),  # data cut short
])
def test_read_idx_bad_files(tmp_path, content, fragment):
    p = tmp_path / "bad-idx"
    p.write_bytes(content)
    with pytest.raises(DataError, match=fragment) as e:
        read_idx(p)
    assert "\n" not in str(e.value)


def test_read_idx_bad_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(p)
    cut = tmp_path / "y.gz"
    cut.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 50), np.uint8)))[:20])
    with pytest.raises(DataError):
        read_idx(cut)
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "missing.gz")


# -- Fashion-MNIST ----------------------------------------------------------------------------------
def fake_fmnist(root: Path, n_train: int = 20, n_test: int = 6) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))  # plain file works too


def test_fmnist_missing_files_name_the_package_and_option(tmp_path):
    for name in ("fmnist", "fmnist16"):
        with pytest.raises(DataError) as e:
            load_dataset(DataConfig(name=name, root=str(tmp_path)))
        msg = str(e.value)
        assert "dataset-fashion-mnist" in msg and "data.root" in msg and str(tmp_path) in msg
        assert "\n" not in msg


def test_fmnist16_from_fake_files(tmp_path):
    fake_fmnist(tmp_path)
    s = load_dataset(DataConfig(name="fmnist16", root=str(tmp_path), val_size=5))
    assert s.train_x.shape == (15, 1, 16, 16) and s.val_x.shape == (5, 1, 16, 16)
    assert s.test_x.shape == (6, 1, 16, 16) and s.num_classes == 10 and s.input_shape == (1, 16, 16)
    raw = torch.from_numpy(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz").copy()).float() / 255
    torch.testing.assert_close(s.test_x, fmnist16_transform(raw.unsqueeze(1)))
    assert s.test_y.tolist() == read_idx(tmp_path / "t10k-labels-idx1-ubyte").tolist()
    s28 = load_dataset(DataConfig(name="fmnist", root=str(tmp_path), val_size=5))
    torch.testing.assert_close(s28.test_x, (raw.unsqueeze(1) - FMNIST_MEAN) / FMNIST_STD)


def test_fmnist_mismatched_files(tmp_path):
    fake_fmnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(7, np.uint8))  # 7 labels for 20 images
    with pytest.raises(DataError, match="unexpected shapes"):
        load_dataset(DataConfig(name="fmnist16", root=str(tmp_path), val_size=2))


def test_fmnist16_transform_by_hand():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = fmnist16_transform(x)
    assert out.shape == (2, 1, 16, 16)
    border = (0.0 - FMNIST_MEAN) / FMNIST_STD
    for edge in (out[..., 0, :], out[..., -1, :], out[..., :, 0], out[..., :, -1]):
        torch.testing.assert_close(edge, torch.full_like(edge, border))
    for n, i, j in [(0, 0, 0), (0, 13, 13), (1, 5, 9), (1, 13, 0)]:
        block = [float(x[n, 0, 2 * i + di, 2 * j + dj]) for di in (0, 1) for dj in (0, 1)]
        want = (sum(block) / 4 - FMNIST_MEAN) / FMNIST_STD
        assert float(out[n, 0, 1 + i, 1 + j]) == pytest.approx(want, abs=1e-5)


@pytest.mark.skipif(not Path(FMNIST_DEFAULT_ROOT, "train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fmnist16():
    s = load_dataset(DataConfig(name="fmnist16", val_size=10000))
    assert s.train_x.shape == (50000, 1, 16, 16) and s.val_x.shape == (10000, 1, 16, 16)
    assert s.test_x.shape == (10000, 1, 16, 16) and s.test_y.shape == (10000,)
    assert s.train_x.dtype == torch.float32 and s.train_y.dtype == torch.int64
    assert set(s.train_y.unique().tolist()) == set(range(10))
    interior = torch.cat([s.train_x, s.val_x])[:, :, 1:-1, 1:-1]
    assert abs(float(interior.mean())) < 0.01  # 0.2860 is the pixel mean, which pooling keeps
    # 0.3530 is the std of single pixels; averaging 2x2 blocks shrinks it a little
    assert 0.85 < float(interior.std()) <= 1.0


# -- splits -----------------------------------------------------------------------------------------
def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def test_split_is_disjoint_and_covers_the_training_file():
    cfg = DataConfig(name="synthetic", val_size=300)
    xtr = DATASETS.get("synthetic")(cfg)[0]
    s = load_dataset(cfg)
    assert len(s.train_x) == len(xtr) - 300 and len(s.val_x) == 300
    assert not rows(s.train_x) & rows(s.val_x)
    assert rows(s.train_x) | rows(s.val_x) == rows(xtr)


def test_split_depends_only_on_split_seed():
    a = load_dataset(DataConfig(name="synthetic", val_size=100, split_seed=1))
    b = load_dataset(DataConfig(name="synthetic", val_size=100, split_seed=1))
    c = load_dataset(DataConfig(name="synthetic", val_size=100, split_seed=2))
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert rows(a.val_x) != rows(c.val_x)
    assert torch.equal(a.test_x, c.test_x)  # the test file is not split


def test_split_sizes():
    full = load_dataset(DataConfig(name="synthetic", val_size=100))
    s = load_dataset(DataConfig(name="synthetic", val_size=100, train_size=64, test_size=50))
    assert len(s.train_x) == len(s.train_y) == 64 and len(s.val_x) == 100 and len(s.test_x) == 50
    assert torch.equal(s.train_x, full.train_x[:64]) and torch.equal(s.val_x, full.val_x)
    assert torch.equal(s.test_x, full.test_x[:50])
    assert len(load_dataset(DataConfig(name="synthetic", val_size=0)).val_x) == 0


@pytest.mark.parametrize("val_size", [-1, 2000, 10 ** 6])
def test_bad_val_size(val_size):
    with pytest.raises(DataError, match="data.val_size"):
        load_dataset(DataConfig(name="synthetic", val_size=val_size))


@pytest.mark.parametrize("kw", [{"train_size": -5}, {"test_size": -1}])
def test_negative_sizes(kw):
    with pytest.raises(DataError, match="must be >= 0"):
        load_dataset(DataConfig(name="synthetic", val_size=10, **kw))


def test_train_size_beyond_the_data_is_an_error():
    n = len(load_dataset(DataConfig(name="synthetic", val_size=100)).train_x)
    assert len(load_dataset(DataConfig(name="synthetic", val_size=100, train_size=n)).train_x) == n
    with pytest.raises(DataError, match=f"data.train_size={n + 1} is more than the {n:,} training images"):
        load_dataset(DataConfig(name="synthetic", val_size=100, train_size=n + 1))


# -- CIFAR-10 ---------------------------------------------------------------------------------------
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def fake_cifar(root: Path, per_batch: int = 4, n_test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    batches = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        batches[name] = data
        batches[name + "_labels"] = np.array(labels)
    return batches


def test_cifar10_from_python_batches(tmp_path):
    raw = fake_cifar(tmp_path)
    s = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), val_size=5))
    assert s.train_x.shape == (15, 3, 32, 32) and s.val_x.shape == (5, 3, 32, 32)
    assert s.test_x.shape == (3, 3, 32, 32) and s.num_classes == 10
    assert s.test_y.tolist() == raw["test_batch_labels"].tolist()
    # rows hold the red plane, then green, then blue, each row-major
    for k, c, h, w in [(0, 0, 0, 0), (1, 1, 5, 31), (2, 2, 31, 7)]:
        v = raw["test_batch"][k, c * 1024 + h * 32 + w] / 255.0
        assert float(s.test_x[k, c, h, w]) == pytest.approx((v - CIFAR_MEAN[c]) / CIFAR_STD[c], abs=1e-5)
    assert len(rows(torch.cat([s.train_x, s.val_x]))) == 20


def test_cifar10_errors(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        load_dataset(DataConfig(name="cifar10"))
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path / "nowhere"), val_size=1))
    fake_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 not found"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), val_size=1))
    (tmp_path / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read CIFAR-10 batch"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), val_size=1))


# -- TensorLoader -----------------------------------------------------------------------------------
def index_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose single pixel is their index, and labels equal to the index."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n)


def labels_of(loader: TensorLoader) -> list[list[int]]:
    return [yb.tolist() for _, yb in loader]


def test_loader_covers_the_epoch_once():
    x, y = index_data(10)
    loader = TensorLoader(x, y, batch_size=4, shuffle=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    assert sorted(sum((yb.tolist() for _, yb in batches), [])) == list(range(10))
    for xb, yb in batches:
        assert torch.equal(xb.view(-1).long(), yb)  # images stay with their labels


def test_loader_drop_last_and_order():
    x, y = index_data(10)
    loader = TensorLoader(x, y, batch_size=3, drop_last=True)
    assert len(loader) == 3
    assert labels_of(loader) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # no shuffle: file order


def test_loader_shuffle_is_deterministic_per_generator():
    x, y = index_data(50)
    make = lambda seed: TensorLoader(x, y, 8, shuffle=True, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = make(3), make(3), make(4)
    ea1, eb1, ec1 = labels_of(a), labels_of(b), labels_of(c)
    assert ea1 == eb1 and ea1 != ec1
    assert labels_of(a) != ea1  # every epoch draws a new order
    assert ea1 != labels_of(TensorLoader(x, y, 8))


@pytest.mark.parametrize("n, world, batch", [(10, 3, 3), (12, 4, 4), (9, 2, 4), (3, 4, 4)])
def test_loader_shards_split_every_batch(n, world, batch):
    """``batch`` is the global batch: the ranks' parts, in rank order, are the one process's batches (a
    last, short batch split as evenly as it goes)."""
    x, y = index_data(n)
    one = labels_of(TensorLoader(x, y, batch, shuffle=True, generator=torch.Generator().manual_seed(7)))
    parts = [labels_of(TensorLoader(x, y, batch, shuffle=True, generator=torch.Generator().manual_seed(7),
                                    shard=(rank, world))) for rank in range(world)]
    assert all(len(p) == len(one) == -(-n // batch) for p in parts)
    for b, whole in enumerate(one):
        assert sum((p[b] for p in parts), []) == whole
        assert max(len(p[b]) for p in parts) - min(len(p[b]) for p in parts) <= 1


def test_augment_keeps_shapes_and_is_a_shifted_flipped_crop():
    x = torch.randn(12, 2, 6, 5, generator=torch.Generator().manual_seed(0))
    pad = 1
    out = augment_batch(x, pad, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    again = augment_batch(x, pad, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert not torch.equal(out, augment_batch(x, pad, torch.Generator().manual_seed(2)))
    xp = F.pad(x, (pad, pad, pad, pad))
    moved = 0
    for k in range(len(x)):
        crops = [img for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 for img in (xp[k, :, dy:dy + 6, dx:dx + 5], xp[k, :, dy:dy + 6, dx:dx + 5].flip(-1))]
        assert any(torch.equal(out[k], c) for c in crops)
        moved += not torch.equal(out[k], x[k])
    assert moved > 0


def test_loader_augment_is_deterministic_per_generator():
    x = torch.randn(16, 1, 8, 8)
    y = torch.zeros(16, dtype=torch.long)
    make = lambda: TensorLoader(x, y, 4, shuffle=True, augment=True, pad=2,  # noqa: E731
                                generator=torch.Generator().manual_seed(5))
    a, b = [xb for xb, _ in make()], [xb for xb, _ in make()]
    assert all(torch.equal(p, q) and p.shape == (4, 1, 8, 8) for p, q in zip(a, b))


def test_loader_channels_last():
    x = torch.randn(8, 3, 5, 5)
    y = torch.arange(8)
    plain = list(TensorLoader(x, y, 4))
    cl = list(TensorLoader(x, y, 4, channels_last=True))
    for (xa, ya), (xb, yb) in zip(plain, cl):
        assert xb.is_contiguous(memory_format=torch.channels_last)
        assert not xa.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    flat = list(TensorLoader(torch.randn(8, 3), y, 4, channels_last=True))  # not images: left alone
    assert flat[0][0].shape == (4, 3)


def test_loader_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        TensorLoader(torch.zeros(3, 1), torch.zeros(4), 2)
