"""Tests for ift_core.data: loaders on committed fixtures, subsets, normalisation, shifts, sub-populations.

Everything here reads the committed fixtures (tests/fixtures/fashion_mnist, tests/fixtures/cifar10)
or scikit-learn's bundled digits; only ``test_fixture_matches_debian_files`` looks at the Debian
package's files, and it is skipped where they are absent.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import math
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ift_core import data as D
from ift_core.data import loading, sources
from ift_core.data.__main__ import main as data_cli
from ift_core.data import (
    DATASETS,
    SHIFTS,
    SUBPOPULATION_TRANSFORMS,
    DataConfig,
    ImageSet,
    apply_transform,
    as_images,
    corrupt,
    load_data,
    load_split,
    locate,
    make_subpopulation_data,
    normalize,
    read_idx,
    subpopulation_examples,
    subset,
)

torch.set_num_threads(1)

FIX = Path(__file__).parent / "fixtures"
FMNIST = FIX / "fashion_mnist"
FMNIST_RAW = FMNIST / "FashionMNIST" / "raw"
CIFAR = FIX / "cifar10"
REPO = Path(__file__).resolve().parent.parent

@pytest.fixture(scope="module")
def fm_sets():
    return load_data(DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=3))


def _equal_sets(a: ImageSet, b: ImageSet) -> bool:
    return (torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and np.array_equal(a.indices, b.indices)
            and a.mean == b.mean and a.std == b.std and a.classes == b.classes)


# ------------------------------------------------------------------------------------------
# Loaders
# ------------------------------------------------------------------------------------------
def test_fashion_fixture_loads_with_expected_shapes_and_values():
    tr = load_split("fashion_mnist", "train", root=FMNIST)
    te = load_split("fashion_mnist", "test", root=FMNIST)
    assert (len(tr), len(te)) == (2000, 1000)
    assert tr.x.shape == (2000, 1, 28, 28) and tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64
    assert (tr.n_classes, tr.in_channels, tr.image_size) == (10, 1, 28)
    assert tr.classes[0] == "T-shirt/top" and tr.classes[9] == "Ankle boot"
    assert torch.bincount(tr.y).tolist() == [200] * 10 and torch.bincount(te.y).tolist() == [100] * 10
    assert float(tr.x.min()) == 0.0 and float(tr.x.max()) == 1.0
    assert tr.mean == (0.0,) and tr.std == (1.0,)
    # pixel values equal the uint8 file contents / 255, read independently with gzip + numpy
    with gzip.open(FMNIST_RAW / "t10k-images-idx3-ubyte.gz", "rb") as fh:
        raw = np.frombuffer(fh.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    np.testing.assert_array_equal(te.x[:, 0].numpy(), raw.astype(np.float32) / 255)
    np.testing.assert_array_equal(tr.indices, np.arange(2000))


def test_root_may_point_at_raw_folder_or_parent():
    a = load_split("fashion_mnist", "test", root=FMNIST)
    b = load_split("fashion_mnist", "test", root=FMNIST_RAW)
    assert torch.equal(a.x, b.x)
    assert locate("fashion_mnist", root=FMNIST) == FMNIST_RAW


def test_read_idx_matches_torchvision_reader(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    pairs = (("t10k-images-idx3-ubyte", read_image_file), ("t10k-labels-idx1-ubyte", read_label_file))
    for stem, reader in pairs:
        plain = tmp_path / stem
        with gzip.open(FMNIST_RAW / f"{stem}.gz", "rb") as src:
            plain.write_bytes(src.read())
        ours_gz, ours_plain = read_idx(FMNIST_RAW / f"{stem}.gz"), read_idx(plain)
        theirs = reader(str(plain)).numpy()
        np.testing.assert_array_equal(ours_gz, theirs)
        np.testing.assert_array_equal(ours_plain, theirs)


def test_read_idx_rejects_broken_files(tmp_path):
    good = gzip.open(FMNIST_RAW / "t10k-labels-idx1-ubyte.gz", "rb").read()
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "magic")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_plain_torchvision_layout_is_read(tmp_path):
    """torchvision's download leaves decompressed files in <root>/FashionMNIST/raw/."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in FMNIST_RAW.glob("*.gz"):
        with gzip.open(f, "rb") as src:
            (raw / f.name[:-3]).write_bytes(src.read())
    a = load_split("fashion_mnist", "train", root=tmp_path)
    b = load_split("fashion_mnist", "train", root=FMNIST)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_ift_data_env_is_searched_first(monkeypatch):
    monkeypatch.setenv("IFT_DATA", str(FMNIST))
    assert locate("fashion_mnist") == FMNIST_RAW
    assert len(load_split("fashion_mnist", "test")) == 1000


def test_missing_files_say_how_to_provide_them(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_split("fashion_mnist", root=tmp_path)
    msg = str(err.value)
    for hint in ("apt-get install dataset-fashion-mnist", "IFT_DATA=", "download=True", str(tmp_path)):
        assert hint in msg
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))


def test_download_path_fetches_into_root(tmp_path, monkeypatch):
    """download=True and the CLI's fetch hand the target folder to torchvision (stubbed: no network)."""
    calls = []

    def fake_fetch(target: Path) -> None:
        calls.append(Path(target))
        raw = Path(target) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for f in FMNIST_RAW.glob("*.gz"):
            shutil.copy(f, raw / f.name)

    monkeypatch.setitem(sources._SOURCES, "fashion_mnist",
                        dataclasses.replace(sources._SOURCES["fashion_mnist"], fetch=fake_fetch))
    with pytest.raises(FileNotFoundError):
        load_split("fashion_mnist", "test", root=tmp_path / "a")  # no download by default
    assert calls == []
    ds = load_split("fashion_mnist", "test", root=tmp_path / "a", download=True)
    assert len(ds) == 1000 and calls == [tmp_path / "a"]
    assert data_cli(["fetch", "fashion_mnist", "--root", str(tmp_path / "b")]) == 0
    assert calls[-1] == tmp_path / "b" and (tmp_path / "b" / "FashionMNIST" / "raw").is_dir()
    assert data_cli(["fetch", "fashion_mnist", "--root", str(tmp_path / "b")]) == 0  # found: no refetch
    assert len(calls) == 2


def test_cli_info_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "ift_core.data", "info", "--root", str(FMNIST)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    assert set(lines) == set(DATASETS)
    assert lines["fashion_mnist"] == str(FMNIST_RAW)
    assert lines["cifar10"].startswith("MISSING")


def test_cifar10_fixture_through_the_real_loader(cifar_fixture_md5):
    cfg = DataConfig(name="cifar10", root=str(CIFAR), n_train=None, n_test=None, normalize=False)
    tr, te = load_data(cfg)
    assert tr.x.shape == (100, 3, 32, 32) and te.x.shape == (50, 3, 32, 32)
    base = CIFAR / "cifar-10-batches-py"
    # independent reading of the on-disk format: pickled dicts, data (N, 3072) channel-major
    xs, ys = [], []
    for b in range(1, 6):
        with open(base / f"data_batch_{b}", "rb") as fh:
            entry = pickle.load(fh, encoding="bytes")
        xs.append(entry[b"data"]), ys.extend(entry[b"labels"])
    expected = np.concatenate(xs).reshape(-1, 3, 32, 32).astype(np.float32) / 255
    np.testing.assert_array_equal(tr.x.numpy(), expected)
    assert tr.y.tolist() == ys
    with open(base / "batches.meta", "rb") as fh:
        names = pickle.load(fh, encoding="bytes")[b"label_names"]
    assert tr.classes == tuple(n.decode() for n in names) and tr.n_classes == 10
    assert tr.in_channels == 3 and tr.image_size == 32
    # normalised: three channels, stats of the training subset
    trn, ten = load_data(DataConfig(name="cifar10", root=str(CIFAR), n_train=50, n_test=20))
    assert len(trn.mean) == 3 and trn.mean == ten.mean
    assert torch.bincount(trn.y).tolist() == [5] * 10


def test_cifar10_loader_checks_md5():
    """With torchvision's own md5 sums the fixture fails the integrity check (it is not CIFAR-10)."""
    sources._read_cifar.cache_clear()
    with pytest.raises(ValueError, match="md5"):
        load_split("cifar10", "test", root=CIFAR)


def test_digits_split_is_fixed_and_complete():
    from sklearn.datasets import load_digits

    tr, te = load_split("digits", "train"), load_split("digits", "test")
    assert (len(tr), len(te)) == (1347, 450)
    assert tr.x.shape[1:] == (1, 8, 8) and float(tr.x.max()) == 1.0 and float(tr.x.min()) == 0.0
    bunch = load_digits()
    # the two splits together are exactly the 1797 images (as a multiset of (image, label) rows)
    ours = np.concatenate([np.c_[s.x.reshape(len(s), -1).numpy() * 16, s.y.numpy()] for s in (tr, te)])
    ref = np.c_[bunch.images.reshape(1797, -1), bunch.target]
    ref = ref.astype(ours.dtype)
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], ref[np.lexsort(ref.T)])
    # stratified: every class's test share is within one image of 450/1797
    for c in range(10):
        n_c = int((bunch.target == c).sum())
        assert abs(int((te.y == c).sum()) - 450 * n_c / 1797) < 1
    assert _equal_sets(load_split("digits", "train"), tr)


@pytest.mark.skipif(not (D.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists()
                    and not (D.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte").exists(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fixture_matches_debian_files():
    full = load_split("fashion_mnist", "test", root=D.DEBIAN_FASHION_MNIST)
    assert len(full) == 10_000 and full.x.shape[1:] == (1, 28, 28)
    fix = load_split("fashion_mnist", "test", root=FMNIST)
    idx = json.loads((FMNIST / "subset_indices.json").read_text())["test"]
    assert torch.equal(full.x[idx], fix.x) and torch.equal(full.y[idx], fix.y)


def test_fixture_files_are_small_and_licensed():
    total = sum(p.stat().st_size for d in (FMNIST, CIFAR) for p in d.rglob("*") if p.is_file())
    assert total < 3_000_000
    assert "Zalando" in (FMNIST / "LICENSE").read_text()
    assert "NOT CIFAR-10" in (CIFAR / "README.md").read_text()


# ------------------------------------------------------------------------------------------
# Subsets and normalisation
# ------------------------------------------------------------------------------------------
def test_load_data_is_deterministic_and_stratified(fm_sets):
    tr, te = fm_sets
    tr2, te2 = load_data(DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=3))
    assert _equal_sets(tr, tr2) and _equal_sets(te, te2)
    assert torch.bincount(tr.y).tolist() == [50] * 10 and torch.bincount(te.y).tolist() == [20] * 10
    assert len(np.unique(tr.indices)) == 500 and np.all(np.diff(tr.indices) > 0)
    # another subset_seed: another training subset, the same test subset (test_seed unchanged)
    tr3, te3 = load_data(DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=4))
    assert not np.array_equal(tr.indices, tr3.indices)
    np.testing.assert_array_equal(te.indices, te3.indices)
    # the subset's images are the split's images at those indices
    full = load_split("fashion_mnist", "train", root=FMNIST)
    torch.testing.assert_close(tr.pixels(), full.x[torch.from_numpy(tr.indices)], rtol=0, atol=1e-6)
    assert torch.equal(tr.y, full.y[torch.from_numpy(tr.indices)])


def test_normalisation_uses_training_subset_stats(fm_sets):
    tr, te = fm_sets
    full = load_split("fashion_mnist", "train", root=FMNIST)
    pix = full.x[torch.from_numpy(tr.indices)].numpy().astype(np.float64)
    assert tr.mean == pytest.approx((pix.mean(),), abs=1e-12)
    assert tr.std == pytest.approx((pix.std(),), abs=1e-12)
    assert te.mean == tr.mean and te.std == tr.std
    assert abs(float(tr.x.mean())) < 1e-5 and abs(float(tr.x.std(unbiased=False)) - 1) < 1e-4
    assert abs(float(te.x.mean())) > 1e-6  # test normalised with train's stats, not its own
    raw_te = load_split("fashion_mnist", "test", root=FMNIST).x[torch.from_numpy(te.indices)]
    torch.testing.assert_close(te.pixels(), raw_te, rtol=0, atol=1e-6)
    cfg = DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=3, normalize=False)
    tr_raw, _ = load_data(cfg)
    assert tr_raw.mean == (0.0,) and tr_raw.std == (1.0,)
    torch.testing.assert_close(tr_raw.x, tr.pixels(), rtol=0, atol=1e-6)


def test_normalize_and_as_images():
    ds = load_split("digits", "test")
    n = normalize(ds)
    assert abs(float(n.x.mean())) < 1e-5
    back = normalize(n, (0.0,), (1.0,))
    torch.testing.assert_close(back.x, ds.x, rtol=0, atol=1e-6)
    imgs = as_images(n, [0, 5])
    assert imgs.shape == (2, 8, 8, 1) and imgs.dtype == np.float32
    np.testing.assert_allclose(imgs[1, :, :, 0], ds.x[5, 0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="std"):
        normalize(ds, (0.0,), (0.0,))
    with pytest.raises(ValueError, match="1 values"):
        normalize(ds, (0.0, 0.0), (1.0, 1.0))


def test_loaded_sets_are_independent_copies():
    tr, _ = load_data(DataConfig(name="digits", n_train=100, n_test=50))
    before = tr.x.clone()
    tr.x.zero_()
    tr2, _ = load_data(DataConfig(name="digits", n_train=100, n_test=50))
    assert torch.equal(tr2.x, before)


def test_subset_is_nested_in_n_and_seeded():
    ds = load_split("fashion_mnist", "test", root=FMNIST)
    small, big = subset(ds, 100, seed=7), subset(ds, 300, seed=7)
    assert set(small.indices) <= set(big.indices)
    assert torch.bincount(small.y).tolist() == [10] * 10
    assert not np.array_equal(subset(ds, 100, seed=8).indices, small.indices)
    plain = subset(ds, 37, seed=1, stratified=False)
    assert len(plain) == 37 and len(set(plain.indices)) == 37


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=5, max_size=60), frac=st.floats(0, 1),
       seed=st.integers(0, 2**31))
def test_stratified_allocation_is_proportional(labels, frac, seed):
    labels = np.array(labels)
    k = len(np.unique(labels))
    n = k + int(round(frac * (len(labels) - k)))
    pos = loading._stratified_positions(labels, n, seed=seed, stratified=True)
    assert len(pos) == n and len(np.unique(pos)) == n and pos.min() >= 0 and pos.max() < len(labels)
    for c in np.unique(labels):
        quota = n * (labels == c).sum() / len(labels)
        got = int((labels[pos] == c).sum())
        assert math.floor(quota) <= got <= math.ceil(quota)
    np.testing.assert_array_equal(pos, loading._stratified_positions(labels, n, seed=seed, stratified=True))


@pytest.mark.parametrize("field,value,match", [
    ("n_train", 0, "n_train=0"), ("n_train", -5, "n_train=-5"), ("n_train", 2001, "n_train=2001"),
    ("n_train", 9, "n_train=9"), ("n_test", 1001, "n_test=1001"), ("n_test", 3, "n_test=3"),
    ("n_train", 2.5, "n_train"), ("n_train", True, "n_train"), ("name", "mnist", "mnist"),
    ("name", "FashionMNIST", "FashionMNIST"),
])
def test_load_data_bad_input(field, value, match):
    kwargs = {"root": str(FMNIST), "n_train": 100, "n_test": 50, field: value}
    with pytest.raises(ValueError, match=match):
        load_data(DataConfig(**kwargs))


def test_other_bad_input():
    ds = load_split("digits", "test")
    for n in (0, -1, 451, 5):
        with pytest.raises(ValueError, match=f"n={n}"):
            subset(ds, n, seed=0)
    with pytest.raises(ValueError, match="split='val'"):
        load_split("digits", "val")
    with pytest.raises(ValueError, match="'imagenet'"):
        load_split("imagenet")
    with pytest.raises(ValueError, match="'svhn'"):
        locate("svhn")
    with pytest.raises(ValueError, match="config"):
        load_data({"name": "digits"})
    with pytest.raises(ValueError, match="seed"):
        subset(ds, 10, seed=1.5)


# ------------------------------------------------------------------------------------------
# Shifts
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SHIFTS)
def test_corrupt_invariants(fm_sets, kind):
    _, te = fm_sets
    te_before = te.x.clone()
    dists = []
    for s in range(0, 6):
        out = corrupt(te, kind, s, seed=1)
        assert out.x.shape == te.x.shape and out.x.dtype == torch.float32
        assert torch.equal(out.y, te.y) and np.array_equal(out.indices, te.indices)
        assert out.mean == te.mean and out.std == te.std and out.classes == te.classes
        pix = out.pixels()
        assert float(pix.min()) >= -1e-6 and float(pix.max()) <= 1 + 1e-6
        dists.append(float((pix - te.pixels()).pow(2).mean().sqrt()))
        assert _equal_sets(out, corrupt(te, kind, s, seed=1))  # deterministic
    assert dists[0] < 1e-6
    assert all(a < b for a, b in zip(dists, dists[1:])), dists  # stronger with severity
    assert torch.equal(te.x, te_before)  # input untouched


def test_corrupt_seed_matters_only_for_random_kinds(fm_sets):
    _, te = fm_sets
    for kind in ("gaussian_noise", "rotation"):
        assert not torch.equal(corrupt(te, kind, 3, seed=0).x, corrupt(te, kind, 3, seed=1).x)
    for kind in ("blur", "contrast"):
        assert torch.equal(corrupt(te, kind, 3, seed=0).x, corrupt(te, kind, 3, seed=1).x)


def test_corrupt_contrast_matches_closed_form(fm_sets):
    _, te = fm_sets
    p = te.pixels().numpy().astype(np.float64)
    m = p.mean(axis=(1, 2, 3), keepdims=True)
    expected = np.clip((p - m) * 0.2 + m, 0, 1)
    np.testing.assert_allclose(corrupt(te, "contrast", 3).pixels().numpy(), expected, atol=1e-5)


def test_corrupt_noise_has_the_stated_scale():
    ds = load_split("digits", "test")
    mid = ds.with_pixels(torch.full_like(ds.x, 0.5))  # no clipping at 0.5 +- 3 sigma for severity 1
    diff = (corrupt(mid, "gaussian_noise", 1, seed=0).pixels() - 0.5).numpy()
    assert abs(diff.mean()) < 0.005 and abs(diff.std() - 0.08) < 0.004


def test_blur_keeps_constant_images_and_names_shifted_sets():
    ds = load_split("digits", "test")
    const = ds.with_pixels(torch.full_like(ds.x, 0.3))
    torch.testing.assert_close(corrupt(const, "blur", 5).pixels(), const.pixels(), rtol=0, atol=1e-6)
    assert corrupt(ds, "rotation", 2).name == "digits:rotation2"


def test_corrupt_bad_input(fm_sets):
    _, te = fm_sets
    with pytest.raises(ValueError, match="'snow'"):
        corrupt(te, "snow", 1)
    for sev in (6, -1):
        with pytest.raises(ValueError, match=f"severity={sev}"):
            corrupt(te, "blur", sev)
    with pytest.raises(ValueError, match="severity"):
        corrupt(te, "blur", 1.5)
    with pytest.raises(ValueError, match="seed"):
        corrupt(te, "blur", 1, seed="a")


# ------------------------------------------------------------------------------------------
# Sub-populations
# ------------------------------------------------------------------------------------------
def test_apply_transform_reference():
    x = torch.rand(3, 2, 6, 6)
    ref = np.rot90(x.numpy(), 1, axes=(2, 3))
    np.testing.assert_array_equal(apply_transform(x, "rotate90").numpy(), ref)
    np.testing.assert_array_equal(apply_transform(x, "rotate180").numpy(), x.numpy()[:, :, ::-1, ::-1])
    np.testing.assert_array_equal(apply_transform(x, "flip_vertical").numpy(), x.numpy()[:, :, ::-1, :])
    torch.testing.assert_close(apply_transform(x, "invert"), 1 - x)
    p = apply_transform(x, "patch")
    assert torch.all(p[:, :, :2, :2] == 1) and torch.equal(p[:, :, 2:, :], x[:, :, 2:, :])
    with pytest.raises(ValueError, match="'blur'"):
        apply_transform(x, "blur")
    with pytest.raises(ValueError, match="shape"):
        apply_transform(x[0], "rotate90")


@pytest.mark.parametrize("transform", SUBPOPULATION_TRANSFORMS)
def test_subpopulation_invariants(fm_sets, transform):
    tr, te = fm_sets
    r = 4
    sub = make_subpopulation_data(tr, te, n_per_class=r, transform=transform, seed=5)
    # labels, sizes, indices and normalisation preserved
    assert torch.equal(sub.train.y, tr.y) and np.array_equal(sub.train.indices, tr.indices)
    assert sub.train.mean == tr.mean and sub.train.std == tr.std
    assert _equal_sets(sub.test, te)
    assert torch.equal(sub.test_sub.y, te.y) and len(sub.test_sub) == len(te)
    # exactly r per class, masks of the right shape and dtype
    assert sub.train_mask.dtype == bool and sub.train_mask.shape == (len(tr),)
    assert np.bincount(tr.y.numpy()[sub.train_mask], minlength=10).tolist() == [r] * 10
    assert not sub.test_mask.any() and sub.test_sub_mask.all() and sub.test_mask.shape == (len(te),)
    assert sub.rarity == pytest.approx(r * 10 / len(tr))
    # unmarked images untouched; marked ones are the transform of the same training image
    keep = torch.from_numpy(~sub.train_mask)
    assert torch.equal(sub.train.x[keep], tr.x[keep])
    mark = torch.from_numpy(sub.train_mask)
    expected = apply_transform(tr.pixels()[mark], transform).clamp(0, 1)
    torch.testing.assert_close(sub.train.pixels()[mark], expected, rtol=0, atol=1e-5)
    assert not torch.equal(sub.train.x[mark], tr.x[mark])
    torch.testing.assert_close(sub.test_sub.pixels(), apply_transform(te.pixels(), transform).clamp(0, 1),
                               rtol=0, atol=1e-5)
    assert set(sub.test_sets()) == {"ordinary", "subpopulation"}


def test_subpopulation_zero_determinism_nesting(fm_sets):
    tr, te = fm_sets
    zero = make_subpopulation_data(tr, te, n_per_class=0, seed=0)
    assert _equal_sets(zero.train, tr) and not zero.train_mask.any() and zero.rarity == 0.0
    a = make_subpopulation_data(tr, te, n_per_class=5, seed=0)
    b = make_subpopulation_data(tr, te, n_per_class=5, seed=0)
    assert _equal_sets(a.train, b.train) and np.array_equal(a.train_mask, b.train_mask)
    assert _equal_sets(a.test_sub, b.test_sub)
    c = make_subpopulation_data(tr, te, n_per_class=5, seed=1)
    assert not np.array_equal(a.train_mask, c.train_mask)
    small = make_subpopulation_data(tr, te, n_per_class=2, seed=0)
    assert np.all(a.train_mask[small.train_mask])  # rarer sub-population is nested in the commoner
    full = make_subpopulation_data(tr, te, n_per_class=50, seed=0)
    assert full.train_mask.all()


def test_subpopulation_bad_input(fm_sets):
    tr, te = fm_sets
    for r in (-1, 51):
        with pytest.raises(ValueError, match=f"n_per_class={r}"):
            make_subpopulation_data(tr, te, n_per_class=r, seed=0)
    with pytest.raises(ValueError, match="'shear'"):
        make_subpopulation_data(tr, te, n_per_class=1, transform="shear", seed=0)
    with pytest.raises(ValueError, match="n_per_class"):
        make_subpopulation_data(tr, te, n_per_class=1.0, seed=0)
    dig = load_split("digits", "test")
    with pytest.raises(ValueError, match="classes"):
        make_subpopulation_data(tr, dig, n_per_class=1, seed=0)


def test_subpopulation_examples(fm_sets):
    _, te = fm_sets
    ex = subpopulation_examples(te, transform="rotate90", n=4)
    assert ex["ordinary"].shape == (4, 28, 28, 1) and ex["subpopulation"].shape == (4, 28, 28, 1)
    assert ex["labels"].tolist() == [0, 1, 2, 3] and ex["class_names"][1] == "Trouser"
    rotated = np.rot90(ex["ordinary"][:, :, :, 0], 1, axes=(1, 2))
    np.testing.assert_allclose(ex["subpopulation"][:, :, :, 0], rotated, atol=1e-6)
    assert ex["ordinary"].min() >= 0 and ex["ordinary"].max() <= 1
    with pytest.raises(ValueError, match="n=11"):
        subpopulation_examples(te, n=11)


# ------------------------------------------------------------------------------------------
# The sub-population as part of the data description (DataConfig fields)
# ------------------------------------------------------------------------------------------
def test_dataconfig_subpopulation_loads_the_construction(fm_sets):
    tr0, te0 = fm_sets
    cfg = DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=3, subpopulation_per_class=4,
                     subpopulation_transform="rotate90+invert", subpopulation_seed=2)
    tr, te = load_data(cfg)
    assert _equal_sets(te, te0)  # the ordinary test set is unchanged
    assert tr.mean == tr0.mean and tr.std == tr0.std  # the ordinary subset's statistics
    assert torch.equal(tr.y, tr0.y) and np.array_equal(tr.indices, tr0.indices)
    # exactly 4 rows per class differ, each the reference transform of the ordinary image
    changed = (tr.x != tr0.x).flatten(1).any(1).numpy()
    assert np.bincount(tr0.y.numpy()[changed], minlength=10).tolist() == [4] * 10
    ref = 1.0 - np.rot90(tr0.pixels().numpy()[changed], 1, axes=(2, 3))
    np.testing.assert_allclose(tr.pixels().numpy()[changed], np.clip(ref, 0, 1), rtol=0, atol=1e-5)
    # the same rows as the single transform with that seed, and the same data as make_subpopulation_data
    single = make_subpopulation_data(tr0, te0, n_per_class=4, transform="rotate90", seed=2)
    assert np.array_equal(single.train_mask, changed)
    made = make_subpopulation_data(tr0, te0, n_per_class=4, transform="rotate90+invert", seed=2)
    assert _equal_sets(made.train, tr)
    # the whole construction from the config: rich test set included
    sub = D.load_subpopulation_data(cfg)
    assert _equal_sets(sub.train, tr) and _equal_sets(sub.test, te0) and np.array_equal(sub.train_mask, changed)
    ref_test = np.clip(1.0 - np.rot90(te0.pixels().numpy(), 1, axes=(2, 3)), 0, 1)
    np.testing.assert_allclose(sub.test_sub.pixels().numpy(), ref_test, rtol=0, atol=1e-5)
    assert torch.equal(sub.test_sub.y, te0.y) and sub.transform == "rotate90+invert"
    # r = 0: the ordinary training set whatever the transform; the rich test set is still defined
    zero = dataclasses.replace(cfg, subpopulation_per_class=0)
    assert _equal_sets(load_data(zero)[0], tr0)
    assert _equal_sets(D.load_subpopulation_data(zero).test_sub, sub.test_sub)
    # deterministic
    assert _equal_sets(load_data(cfg)[0], tr)


@pytest.mark.parametrize("changes, match", [
    ({"subpopulation_per_class": -1}, "subpopulation_per_class"),
    ({"subpopulation_per_class": 1.5}, "subpopulation_per_class"),
    ({"subpopulation_per_class": True}, "subpopulation_per_class"),
    ({"subpopulation_seed": -2}, "subpopulation_seed"),
    ({"subpopulation_transform": "spin"}, "'spin'"),
    ({"subpopulation_transform": "rotate90+rotate90"}, "repeats"),
    ({"subpopulation_transform": ""}, "non-empty"),
])
def test_dataconfig_subpopulation_bad_input(changes, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(name="digits", **changes)


def test_dataconfig_subpopulation_too_large():
    with pytest.raises(ValueError, match="n_per_class=30"):
        load_data(DataConfig(name="digits", n_train=200, n_test=50, subpopulation_per_class=30))
    with pytest.raises(ValueError, match="DataConfig"):
        D.load_subpopulation_data("digits")


def test_apply_transform_combination():
    x = torch.rand(2, 1, 5, 5)
    want = 1.0 - x.numpy()[:, :, ::-1, :]
    np.testing.assert_allclose(apply_transform(x, "flip_vertical+invert").numpy(), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="'shear'"):
        apply_transform(x, "rotate90+shear")


def test_registry_orders_are_fixed():
    """The position of a shift or transform in its registry seeds its randomness (and which
    images a sub-population takes): new entries go at the end, existing ones never move."""
    assert SHIFTS == ("gaussian_noise", "blur", "contrast", "rotation")
    assert SUBPOPULATION_TRANSFORMS == ("rotate90", "rotate180", "flip_vertical", "invert", "patch")
    assert DATASETS == ("fashion_mnist", "cifar10", "digits")


def test_face_and_homes_agree():
    """Every public name of ift_core.data is the object of the file that defines it."""
    import importlib

    for name, home in D._HOME.items():
        assert getattr(D, name) is getattr(importlib.import_module(f"ift_core.data.{home}"), name), name
    assert sorted(D.__all__) == sorted(D._HOME)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        D.nope  # noqa: B018
