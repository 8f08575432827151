"""Activations: forward hooks on any module, ActivationSet storage without pickle, the ensemble cache."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from ift_core import activations as act
from ift_core.activations import ActivationSet, activations_path, ensemble_activations, extract_activations
from ift_core.data import DataConfig
from ift_core.train import TrainConfig, get_profile, train_ensemble

torch.set_num_threads(1)


class UserNet(nn.Module):
    """A model of the user's own, with no `penultimate` layer."""

    def __init__(self, d_in=6, hidden=5, n_classes=3):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.head(self.encoder(x))


def user_nets(n=3, **kw):
    nets = []
    for s in range(n):
        torch.manual_seed(s)
        nets.append(UserNet(**kw))
    return nets


# ------------------------------------------------------------------------------------------
# extract_activations
# ------------------------------------------------------------------------------------------
def test_hook_on_user_module_matches_manual_forward():
    nets = user_nets()
    x = torch.randn(37, 6, generator=torch.Generator().manual_seed(0))
    acts, logits = extract_activations(nets, x, layer="encoder", batch_size=10)
    assert acts.shape == (3, 37, 5) and logits.shape == (3, 37, 3)
    assert acts.dtype == logits.dtype == np.float32
    with torch.no_grad():
        for m, net in enumerate(nets):
            np.testing.assert_allclose(acts[m], net.encoder(x).numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(logits[m], net(x).numpy(), rtol=1e-6, atol=1e-7)
    # A nested layer by its dotted name.
    inner, _ = extract_activations(nets[0], x, layer="encoder.0")
    np.testing.assert_allclose(inner[0], nets[0].encoder[0](x).detach().numpy(), rtol=1e-6, atol=1e-7)


def test_conv_layer_is_flattened_and_batching_does_not_matter():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = np.random.default_rng(0).normal(size=(9, 1, 4, 4)).astype(np.float32)  # numpy input works
    a1, l1 = extract_activations(net, x, layer="1", batch_size=2)
    a2, l2 = extract_activations(net, x, layer="1", batch_size=512)
    assert a1.shape == (1, 9, 32)
    np.testing.assert_allclose(a1, a2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(l1, l2, rtol=1e-6, atol=1e-7)


def test_model_state_restored_and_no_gradients():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    extract_activations(net, torch.randn(8, 4), layer="1")
    assert net.training  # put back in training mode
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # eval mode: BN stats untouched
    assert all(p.grad is None for p in net.parameters())
    # Eval mode is used: the BN layer normalises with running stats, not the batch's.
    x = torch.randn(8, 4)
    _, logits = extract_activations(net, x, layer="1")
    with torch.no_grad():
        np.testing.assert_allclose(logits[0], net.eval()(x).numpy(), rtol=1e-6, atol=1e-7)


def test_unknown_layer_lists_the_names():
    with pytest.raises(ValueError, match=r"layer 'penultimate' not found in UserNet.*'encoder', 'encoder.0'"):
        extract_activations(UserNet(), torch.randn(2, 6))


@pytest.mark.parametrize(
    "models,x,kwargs,match",
    [
        ([], torch.zeros(2, 6), {}, "empty"),
        ("net", torch.zeros(2, 6), {}, "nn.Module"),
        ([UserNet(), "net"], torch.zeros(2, 6), {}, r"models\[1\]"),
        (UserNet(), torch.zeros(0, 6), {}, "N >= 1"),
        (UserNet(), torch.zeros(6), {}, "shape"),
        (UserNet(), torch.zeros(2, 6, dtype=torch.int64), {}, "floating point"),
        (UserNet(), torch.tensor([[float("nan")] * 6]), {}, "NaN"),
        (UserNet(), np.full((2, 6), np.inf), {}, "NaN or infinite"),
        (UserNet(), [[0.0] * 6], {}, "torch.Tensor or numpy"),
        (UserNet(), torch.zeros(2, 6), {"batch_size": 0}, "batch_size"),
        (UserNet(), torch.zeros(2, 6), {"layer": 3}, "layer"),
        ([UserNet(), UserNet(hidden=4)], torch.zeros(2, 6), {}, "disagree"),
    ],
)
def test_bad_input(models, x, kwargs, match):
    kwargs = {"layer": "encoder"} | kwargs
    with pytest.raises(ValueError, match=match):
        extract_activations(models, x, **kwargs)


def test_layer_that_runs_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(3, 3)
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.block(self.block(x)))

    with pytest.raises(ValueError, match="ran 2 times"):
        extract_activations(Twice(), torch.zeros(2, 3), layer="block")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu():
    with pytest.raises(ValueError, match="CUDA"):
        extract_activations(UserNet(), torch.zeros(2, 6), layer="encoder", device="cuda")


# ------------------------------------------------------------------------------------------
# ActivationSet
# ------------------------------------------------------------------------------------------
def random_set(m=3, n=20, d=4, c=5, seed=0) -> ActivationSet:
    rng = np.random.default_rng(seed)
    return ActivationSet(
        activations=rng.normal(size=(m, n, d)).astype(np.float32),
        logits=(10 * rng.normal(size=(m, n, c))).astype(np.float32),
        labels=rng.integers(0, c, size=n),
        seeds=np.arange(m) + 7,
        meta={"config": {"arch": "mlp", "width": None}, "split": "test", "indices": list(range(n))},
    )


def test_probs_and_preds_against_torch():
    s = random_set()
    ref = torch.softmax(torch.from_numpy(s.logits).double(), dim=-1).numpy()
    np.testing.assert_allclose(s.probs, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s.probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(s.preds, np.argmax(s.logits, axis=-1))
    assert s.preds.shape == (3, 20) and (s.n_models, s.n_points) == (3, 20)
    big = ActivationSet(np.zeros((1, 1, 1)), np.array([[[1000.0, 0.0]]]), [0], [0], {})
    np.testing.assert_allclose(big.probs, [[[1.0, 0.0]]])  # no overflow


def test_save_load_round_trip(tmp_path):
    s = random_set()
    path = s.save(tmp_path / "acts.npz")
    back = ActivationSet.load(path)
    for name in ("activations", "logits", "labels", "seeds"):
        a, b = getattr(s, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.meta == s.meta
    assert back.labels.dtype == np.int64 and back.activations.dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["acts.npz"]  # no temp file left


def test_load_never_unpickles(tmp_path, monkeypatch):
    path = random_set().save(tmp_path / "a.npz")

    def boom(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    assert ActivationSet.load(path).n_models == 3
    monkeypatch.undo()
    # A file whose metadata is a pickled object is refused, not executed.
    s = random_set()
    with open(tmp_path / "evil.npz", "wb") as fh:
        np.savez(fh, activations=s.activations, logits=s.logits, labels=s.labels, seeds=s.seeds,
                 meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        ActivationSet.load(tmp_path / "evil.npz")


def test_load_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        ActivationSet.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", activations=np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="missing"):
        ActivationSet.load(tmp_path / "other.npz")


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(activations=np.zeros((3, 20))), "activations"),
        (dict(activations=np.full((3, 20, 4), np.nan)), "NaN"),
        (dict(logits=np.zeros((3, 19, 5))), "logits shape"),
        (dict(labels=np.zeros(19, dtype=int)), "labels must have shape"),
        (dict(labels=np.full(20, 5)), r"labels must lie in \[0, 5\)"),
        (dict(labels=np.full(20, 0.5)), "whole numbers"),
        (dict(seeds=np.arange(2)), "seeds must have shape"),
        (dict(meta=[1, 2]), "meta must be a dict"),
        (dict(meta={"f": object()}), "JSON"),
    ],
)
def test_activation_set_bad_input(change, match):
    s = random_set()
    fields = dict(activations=s.activations, logits=s.logits, labels=s.labels, seeds=s.seeds, meta=s.meta)
    with pytest.raises(ValueError, match=match):
        ActivationSet(**(fields | change))


# ------------------------------------------------------------------------------------------
# Ensembles
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    return train_ensemble(get_profile("tiny"), progress=False)


def test_ensemble_activations_cached_and_consistent(tiny, monkeypatch):
    cfg = get_profile("tiny")
    a = ensemble_activations(tiny, progress=False)
    _, test = tiny.data()
    assert a.activations.shape == (cfg.n_models, len(test), 128)
    assert a.logits.shape == (cfg.n_models, len(test), 10)
    np.testing.assert_array_equal(a.labels, test.y.numpy())
    np.testing.assert_array_equal(a.seeds, tiny.seeds)
    # Predictions reproduce each model's recorded test accuracy.
    np.testing.assert_allclose((a.preds == a.labels).mean(axis=1), tiny.test_accuracy, atol=1e-12)
    assert a.meta["split"] == "test" and a.meta["config"]["arch"] == "mlp"
    assert a.meta["indices"] == test.indices.tolist()
    path = activations_path(tiny, "test")
    assert path.exists() and path.parent == tiny.directory

    def no_compute(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(act, "extract_activations", no_compute)
    b = ensemble_activations(tiny, progress=False)
    np.testing.assert_array_equal(a.activations, b.activations)
    assert b.meta == a.meta


def test_train_split_and_bad_split(tiny):
    a = ensemble_activations(tiny, split="train", progress=False, cache=False)
    assert a.activations.shape[:2] == (len(tiny), len(tiny.data()[0]))
    assert not activations_path(tiny, "train").exists()  # cache=False writes nothing
    with pytest.raises(ValueError, match="unknown split"):
        ensemble_activations(tiny, split="val")


def test_same_config_gives_bit_identical_activations():
    c = TrainConfig(data=DataConfig(name="digits", n_train=400, n_test=150), arch="small_cnn", width=4,
                    n_models=2, epochs=2, lr=0.05, batch_size=50)
    ens = train_ensemble(c, backend="sequential", cache=False, progress=False)
    a = ensemble_activations(ens, progress=False)
    # Trained in channels-last, recorded and extracted in the standard layout: the same numbers.
    np.testing.assert_allclose((a.preds == a.labels).mean(axis=1), ens.test_accuracy, atol=1e-12)
    b = ensemble_activations(train_ensemble(c, backend="sequential", cache=False, progress=False),
                             progress=False)
    assert np.array_equal(a.activations, b.activations) and np.array_equal(a.logits, b.logits)
    assert a.activations.shape == (2, 150, 32)
    assert json.loads(json.dumps(a.meta)) == a.meta


def test_subpopulation_split_is_the_rich_test_set(tiny):
    from ift_core.data import apply_transform

    ens = train_ensemble(get_profile("tiny").replace(subpopulation_transform="rotate180"), progress=False)
    assert ens.directory == tiny.directory  # no sub-population in training: the ordinary ensemble
    a = ensemble_activations(ens, split="subpopulation", progress=False)
    _, test = ens.data()
    rich = test.with_pixels(apply_transform(test.pixels(), "rotate180").clamp(0, 1))
    ref_acts, ref_logits = extract_activations(ens.models, rich.x)
    np.testing.assert_array_equal(a.activations, ref_acts)
    np.testing.assert_array_equal(a.logits, ref_logits)
    np.testing.assert_array_equal(a.labels, test.y.numpy())
    assert a.meta["split"] == "subpopulation" and a.meta["data_name"].endswith(":rotate180")
    path = activations_path(ens, "subpopulation")
    assert path.exists() and "rotate180" in path.name
    # another transform is another file, and differs from the ordinary test set
    other = ensemble_activations(tiny, split="subpopulation", progress=False)
    assert activations_path(tiny, "subpopulation") != path
    assert not np.array_equal(other.logits, a.logits)
    assert not np.array_equal(ensemble_activations(tiny, progress=False).logits, a.logits)


def test_bad_activation_backend(tiny):
    with pytest.raises(ValueError, match="backend"):
        ensemble_activations(tiny, backend="dask", progress=False)
    with pytest.raises(ValueError, match="backend='ray'"):
        ensemble_activations(tiny, ray_address="auto", progress=False)
