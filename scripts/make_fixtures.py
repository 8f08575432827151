"""Write the committed test fixtures from the real Fashion-MNIST files.

    python scripts/make_fixtures.py [--source /usr/share/datasets/fashion-mnist]

(a) ``tests/fixtures/fashion_mnist/FashionMNIST/raw/``: a real, stratified subset of Fashion-MNIST
    (2,000 training + 1,000 test images, 200/100 per class, original order kept) in the original
    gzipped IDX format, with Fashion-MNIST's MIT licence, a README and the chosen indices.
(b) ``tests/fixtures/cifar10/cifar-10-batches-py/``: a *format* fixture in CIFAR-10's on-disk
    layout (data_batch_1..5, test_batch, batches.meta, pickled as Python 2 wrote them). Its
    images are NOT CIFAR-10: they are Fashion-MNIST fixture images, padded to 32x32 and copied
    into 3 channels, with Fashion-MNIST's labels and class names. It only tests that our CIFAR-10 loader reads the
    real format. Its files cannot match CIFAR-10's md5 sums, and the loader always checks them
    before unpickling; the tests substitute the fixture's own md5 sums (listed in its README) for
    torchvision's. No file in the folder marks it as special.

The output is byte-for-byte reproducible (gzip mtime 0, pickle protocol 2, fixed seeds).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import pickle
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ift_core.data.loading import _stratified_positions  # noqa: E402
from ift_core.data.sources import (  # noqa: E402
    _FMNIST_FILES,
    DEBIAN_FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    locate,
    read_idx,
)

N_TRAIN, N_TEST, SEED = 2000, 1000, 0
CIFAR_PER_TRAIN_BATCH, CIFAR_TEST = 20, 50
FIX = REPO / "tests" / "fixtures"
COPYRIGHT = Path("/usr/share/doc/dataset-fashion-mnist/copyright")

MIT = """The MIT License (MIT) Copyright © [2017] Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the “Software”), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def _idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array in IDX format (magic 0x0000 08 ndim, big-endian dims)."""
    if arr.dtype != np.uint8:
        raise ValueError(f"only uint8 arrays are written, got {arr.dtype}")
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr).tobytes()


def _write_gz(path: Path, payload: bytes) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=9) as gz:
        gz.write(payload)


def _licence_text() -> str:
    if COPYRIGHT.is_file():
        return ("Fashion-MNIST (images and labels) is released by Zalando Research under the MIT "
                "licence (the Debian package's copyright file, copied verbatim, follows; SPDX "
                "'Expat' = MIT).\n\n" + COPYRIGHT.read_text())
    return MIT


def make_fashion(source: Path) -> dict[str, np.ndarray]:
    out = FIX / "fashion_mnist" / "FashionMNIST" / "raw"
    if out.parent.parent.exists():
        shutil.rmtree(out.parent.parent)
    out.mkdir(parents=True)
    chosen: dict[str, np.ndarray] = {}
    data: dict[str, np.ndarray] = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        img_stem, lab_stem = _FMNIST_FILES[split]
        images = read_idx(next(source.glob(img_stem + "*")))
        labels = read_idx(next(source.glob(lab_stem + "*")))
        pos = _stratified_positions(labels.astype(np.int64), n, seed=SEED, stratified=True)
        chosen[split] = pos
        _write_gz(out / f"{img_stem}.gz", _idx_bytes(images[pos]))
        _write_gz(out / f"{lab_stem}.gz", _idx_bytes(labels[pos]))
        data[split + "_x"], data[split + "_y"] = images[pos], labels[pos]
    base = out.parent.parent
    (base / "LICENSE").write_text(_licence_text())
    (base / "subset_indices.json").write_text(json.dumps(
        {"seed": SEED, "train": chosen["train"].tolist(), "test": chosen["test"].tolist()}) + "\n")
    (base / "README.md").write_text(f"""# Fashion-MNIST test fixture (real data, small)

A real subset of Zalando Research's Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist),
licensed MIT (see LICENSE): {N_TRAIN} training images and {N_TEST} test images, {N_TRAIN // 10} and
{N_TEST // 10} per class, drawn by `ift_core.data` 's stratified subset with seed {SEED} and kept in
their original order. `subset_indices.json` lists the positions in the original 60,000 / 10,000
images.

Files are in the original format (gzipped IDX), laid out as torchvision's `FashionMNIST/raw/`,
so `ift_core.data.load_split("fashion_mnist", root="tests/fixtures/fashion_mnist")` reads them.
The test suite uses them so it does not depend on the Debian package `dataset-fashion-mnist`.

Regenerate with `python scripts/make_fixtures.py` (needs the full files; output is reproducible).
""")
    return data


class _Py2Str(str):
    """A string pickled as Python 2's ``str`` (BINSTRING), as in the real CIFAR-10 files."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add one opcode writer
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2str(self, obj: _Py2Str) -> None:
        raw = str(obj).encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _pickle(path: Path, obj: dict) -> None:
    """Pickle like the original (Python 2, protocol 2): keys load as str with encoding="latin1"
    (what torchvision does) and as bytes with encoding="bytes" (what CIFAR's page shows)."""
    with open(path, "wb") as fh:
        _Py2Pickler(fh, protocol=2).dump(obj)


def make_cifar(fashion: dict[str, np.ndarray]) -> None:
    base = FIX / "cifar10"
    if base.exists():
        shutil.rmtree(base)
    out = base / "cifar-10-batches-py"
    out.mkdir(parents=True)

    def to_cifar(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))                    # 28x28 -> 32x32
        rgb = np.repeat(padded[:, None], 3, axis=1)                      # (N, 3, 32, 32)
        return rgb.reshape(len(x), 3072).astype(np.uint8)                # CIFAR's row layout

    def pick(split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        y = fashion[split + "_y"].astype(np.int64)
        pos = _stratified_positions(y, n, seed=seed, stratified=True)
        return to_cifar(fashion[split + "_x"][pos]), y[pos]

    def batch(label: str, x: np.ndarray, y: np.ndarray, prefix: str) -> dict:
        return {_Py2Str("batch_label"): _Py2Str(label), _Py2Str("labels"): [int(v) for v in y],
                _Py2Str("data"): x,
                _Py2Str("filenames"): [_Py2Str(f"fixture_{prefix}_{i}.png") for i in range(len(y))]}

    for b in range(1, 6):
        x, y = pick("train", CIFAR_PER_TRAIN_BATCH, seed=b)
        _pickle(out / f"data_batch_{b}", batch(f"training batch {b} of 5", x, y, str(b)))
    x, y = pick("test", CIFAR_TEST, seed=0)
    _pickle(out / "test_batch", batch("testing batch 1 of 1", x, y, "t"))
    _pickle(out / "batches.meta", {_Py2Str("label_names"): [_Py2Str(c) for c in FASHION_MNIST_CLASSES],
                                   _Py2Str("num_cases_per_batch"): CIFAR_PER_TRAIN_BATCH,
                                   _Py2Str("num_vis"): 3072})
    md5 = "\n".join(f"    {hashlib.md5((out / f).read_bytes()).hexdigest()}  {f}"
                    for f in sorted(p.name for p in out.iterdir()))
    note = f"""# CIFAR-10 FORMAT fixture -- not CIFAR-10 data

This folder has CIFAR-10's on-disk layout (torchvision's `cifar-10-batches-py/`: pickled dicts with
b"data" uint8 (N, 3072) in CIFAR's channel-major row layout, b"labels", b"filenames"; data_batch_1..5
with {CIFAR_PER_TRAIN_BATCH} images each, test_batch with {CIFAR_TEST}; batches.meta with b"label_names").
Its images are NOT CIFAR-10: they are Fashion-MNIST images from tests/fixtures/fashion_mnist (MIT, see
the LICENSE there), zero-padded from 28x28 to 32x32 and copied into the 3 channels, with their
Fashion-MNIST labels and class names. It exists only to test that `ift_core.data` reads the real
CIFAR-10 format through torchvision's `CIFAR10`. Never use it as data.

The batches are pickles, so `ift_core.data` always lets torchvision check every file's md5 sum before
it unpickles any, and these files cannot match CIFAR-10's sums. The tests load the fixture by giving
torchvision the fixture's own sums (tests/test_data.py, `CIFAR_FIXTURE_MD5`), which are:

{md5}

Regenerate with `python scripts/make_fixtures.py` (the output is byte-for-byte reproducible; if it
changes, update `CIFAR_FIXTURE_MD5`).
"""
    (base / "README.md").write_text(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=None,
                        help="folder with the full Fashion-MNIST IDX files "
                             f"(default: the usual search, e.g. {DEBIAN_FASHION_MNIST})")
    args = parser.parse_args(argv)
    source = Path(args.source) if args.source else locate("fashion_mnist")
    if source.resolve() == (FIX / "fashion_mnist" / "FashionMNIST" / "raw").resolve():
        raise SystemExit("refusing to build the fixture from itself; pass --source with the full files")
    fashion = make_fashion(source)
    make_cifar(fashion)
    files = sorted(p for d in ("fashion_mnist", "cifar10") for p in (FIX / d).rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    for p in files:
        if True:
            print(f"{p.stat().st_size:>9,d}  {p.relative_to(REPO)}")
    print(f"{total:>9,d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
