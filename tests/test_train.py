"""Seed ensembles: configs, modes, determinism across backends, checkpoints, resume, cache."""
from __future__ import annotations

import gc
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ensemble_checks import assert_bit_identical, record_layer, weights
from ift_core import train as tr
from ift_core.models import ARCHITECTURES
from ift_core.train import backends, seed
from ift_core.train import config as train_config
from ift_core.data import DataConfig, load_data
from ift_core.train import (
    MODES,
    PROFILES,
    Ensemble,
    TrainConfig,
    get_profile,
    load_ensemble,
    lr_at,
    model_seeds,
    train_ensemble,
    train_seed,
)
from ift_core.train.seed import resolve_device

torch.set_num_threads(1)

DIGITS = DataConfig(name="digits", n_train=600, n_test=200)
REAL_TRAIN_SEED = backends.train_seed


def small(**changes) -> TrainConfig:
    """A config that trains in a fraction of a second per seed."""
    base = TrainConfig(data=DIGITS, arch="mlp", width=32, n_models=3, epochs=2, lr=0.05, batch_size=50)
    return base.replace(**changes)


def max_weight_gap(a: Ensemble, b: Ensemble) -> float:
    return max(float((x - y).abs().max())
               for sa, sb in zip(weights(a), weights(b)) for x, y in zip(sa.values(), sb.values()))


class SimulatedKill(Exception):
    """Stands for a kill (Ctrl-C, OOM, lost node) in the middle of a run."""


class Counter:
    """Wraps train_seed (as the backends call it): counts calls and can fail after k of them (a simulated kill)."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[int] = []
        self.fail_after = fail_after
        self.real = REAL_TRAIN_SEED

    def __call__(self, config, m, *args, **kwargs):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise SimulatedKill(f"killed after {len(self.calls)} seeds")
        self.calls.append(m)
        return self.real(config, m, *args, **kwargs)


# ------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(mode="sameinit"), "unknown mode"),
        (dict(arch="vgg"), "unknown arch"),
        (dict(schedule="step"), "unknown schedule"),
        (dict(n_models=0), "n_models"),
        (dict(n_models=2.0), "n_models"),
        (dict(epochs=0), "epochs"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(momentum=1.0), "momentum"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(batch_size=0), "batch_size"),
        (dict(seed=-1), "seed"),
        (dict(width=0), "width"),
        (dict(data="digits"), "DataConfig"),
        (dict(mode="diffdata", n_train=None), "n_train"),
        (dict(mode="alldiff", n_train=None), "n_train"),
        (dict(colour="red"), "unknown TrainConfig field"),
    ],
)
def test_bad_config(changes, match):
    with pytest.raises(ValueError, match=match):
        small(**changes)


def test_replace_data_fields_bare_and_dotted():
    c = small()
    assert c.replace(n_train=100).data.n_train == 100
    assert c.replace(**{"data.subset_seed": 4}).data.subset_seed == 4
    d = c.replace(epochs=5, name="fashion_mnist", n_test=50)
    assert (d.epochs, d.data.name, d.data.n_test, d.data.n_train) == (5, "fashion_mnist", 50, 600)
    assert c.epochs == 2 and c.data == DIGITS  # frozen: the original is untouched
    with pytest.raises(Exception):
        c.epochs = 3  # type: ignore[misc]


def test_profiles():
    tiny, cpu, paper = get_profile("tiny"), get_profile("cpu"), get_profile("paper")
    assert (tiny.data.name, tiny.arch) == ("digits", "mlp")
    assert (cpu.data.name, cpu.arch, cpu.n_models, cpu.data.n_train, cpu.data.n_test) == (
        "fashion_mnist", "small_cnn", 20, 5_000, 10_000)  # the paper's M = 20 and N = 10,000
    assert (paper.data.name, paper.arch, paper.n_models, paper.data.n_train, paper.data.n_test) == (
        "cifar10", "resnet18", 20, None, None)
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.batch_size, paper.schedule) == (
        0.1, 0.9, 1e-4, 100, "cosine")
    assert get_profile("cpu", n_models=4, n_train=500).replace(n_models=20, n_train=5_000) == cpu
    assert set(PROFILES) == {"tiny", "cpu", "paper"}
    # The data set's `name` is an override like any other, not the profile's name.
    assert get_profile("tiny", name="fashion_mnist").data.name == "fashion_mnist"
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")


def test_model_seeds_per_mode():
    table = {
        "diffinit": [(5, 5, 0, 2), (6, 6, 5, 2)],
        "difforder": [(5, 5, 5, 2), (6, 5, 6, 2)],
        "diffdata": [(5, 5, 5, 2), (6, 5, 5, 3)],
        "alldiff": [(5, 5, 5, 2), (6, 6, 6, 3)],
    }
    for mode in MODES:
        c = small(mode=mode, seed=5, subset_seed=2)
        got = [tuple(model_seeds(c, m).values()) for m in range(2)]
        # diffinit: order fixed by config.seed; here seed=5 so both orders are 5.
        want = [(s, i, o if mode != "diffinit" else 5, d) for s, i, o, d in table[mode]]
        assert got == want, mode


def test_lr_schedule():
    c = small(lr=0.2)
    assert lr_at(c, 0, 100) == pytest.approx(0.2)
    assert lr_at(c, 50, 100) == pytest.approx(0.1)
    assert lr_at(c, 99, 100) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert all(lr_at(c, s + 1, 100) < lr_at(c, s, 100) for s in range(99))
    assert all(lr_at(small(schedule="constant"), s, 10) == 0.05 for s in range(10))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(backend="threads"), "unknown backend"),
        (dict(n_workers=0), "n_workers"),
        (dict(n_workers=1.5), "n_workers"),
        (dict(backend="sequential", ray_address="auto"), "backend='ray'"),
        (dict(backend="processes", ray_resources={"num_cpus": 1}), "backend='ray'"),
        (dict(backend="ray", ray_resources={"num_gpu": 1}), "num_gpu"),
        (dict(backend="ray", device="cuda"), "num_gpus > 0"),
        (dict(backend="processes", seeds_per_gpu=0), "seeds_per_gpu"),
        (dict(backend="processes", seeds_per_gpu=1.5), "seeds_per_gpu"),
        (dict(backend="sequential", seeds_per_gpu=2), "backend='processes'"),
        (dict(backend="auto", seeds_per_gpu=2), "backend='processes'"),
        (dict(backend="processes", seeds_per_gpu=2, device="cpu"), "not CUDA"),
    ],
)
def test_bad_train_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_ensemble(small(), progress=False, **kwargs)


def test_bad_train_arguments_types():
    with pytest.raises(ValueError, match="TrainConfig"):
        train_ensemble({"arch": "mlp"}, progress=False)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_requested_without_gpu():
    with pytest.raises(ValueError, match="CUDA"):
        train_ensemble(small(), device="cuda", progress=False)


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> Ensemble:
    return train_ensemble(get_profile("tiny"), progress=False)


def test_tiny_profile_learns_digits(tiny):
    cfg = get_profile("tiny")
    assert len(tiny) == cfg.n_models and tiny.seeds == cfg.seeds
    assert tiny.test_accuracy.shape == tiny.train_accuracy.shape == (cfg.n_models,)
    assert tiny.test_accuracy.min() > 0.85
    assert tiny.train_accuracy.min() > 0.95
    assert all(not m.training for m in tiny.models)
    assert all(p.device.type == "cpu" for m in tiny.models for p in m.parameters())
    # Recorded accuracy is the model's accuracy on the test set (independent recomputation).
    _, test = tiny.data()
    with torch.no_grad():
        acc = [float((m(test.x).argmax(1) == test.y).float().mean()) for m in tiny.models]
    np.testing.assert_allclose(acc, tiny.test_accuracy, atol=1e-12)


def test_same_config_gives_bit_identical_weights():
    c = small(arch="small_cnn", width=4, mode="alldiff")
    a = train_ensemble(c, backend="sequential", cache=False, progress=False)
    b = train_ensemble(c, backend="sequential", cache=False, progress=False)
    assert_bit_identical(a, b)
    assert a.directory != b.directory  # cache=False: fresh folders, the cache is left alone
    assert not (tr.ensemble_dir(c) / "seed_00000.pt").exists()
    scratch = a.directory
    assert (scratch / "seed_00000.pt").exists()
    del a
    gc.collect()
    assert not scratch.exists()  # removed with its Ensemble


def test_threads_restored_after_training():
    torch.set_num_threads(2)
    try:
        train_ensemble(small(n_models=1, epochs=1), backend="sequential", cache=False, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.slow  # two spawned workers each import torch: ~10 s, more on a loaded machine
def test_processes_equal_sequential_bit_for_bit():
    # A conv net with its own data subset per seed: exercises diffdata through the workers.
    c = small(arch="small_cnn", width=4, mode="alldiff")
    seq = train_ensemble(c, backend="sequential", cache=False, progress=False)
    proc = train_ensemble(c, backend="processes", n_workers=2, cache=False, progress=False)
    assert_bit_identical(seq, proc)
    assert {m["backend"] for m in proc.metrics()} == {"processes"}


@pytest.mark.slow
def test_processes_workers_serve_the_next_call_on_other_data_bit_for_bit():
    """The CPU workers outlive a call (ift_core.train.backends' shared pool): the next call, on
    other data (another training subset), is trained on that data by the same workers."""
    import psutil

    from ift_core.train import backends

    first, second = small(arch="small_cnn", width=4), small(arch="small_cnn", width=4, n_train=150, subset_seed=1)
    assert first.data != second.data
    train_ensemble(first, backend="processes", n_workers=2, cache=False, progress=False)
    workers = {p.pid for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())}
    assert len(workers) == 2, "the two workers did not stay for the next call"
    proc = train_ensemble(second, backend="processes", n_workers=2, cache=False, progress=False)
    again = {p.pid for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())}
    assert again == workers, "the second call started new workers"
    assert_bit_identical(train_ensemble(second, backend="sequential", cache=False, progress=False), proc)
    backends.close_cpu_pool()
    assert not [p for p in psutil.Process().children() if p.pid in workers and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE], "close_cpu_pool left workers running"


@pytest.mark.parametrize("mode", ["diffinit", "alldiff"])  # shared batches / stacked batches
def test_vmap_close_to_sequential(mode):
    c = small(mode=mode, epochs=3)
    seq = train_ensemble(c, backend="sequential", cache=False, progress=False)
    vm = train_ensemble(c, backend="vmap", cache=False, progress=False)
    gap = max_weight_gap(seq, vm)
    assert gap < 1e-4
    assert max_weight_gap(seq, train_ensemble(c.replace(seed=1), backend="sequential", cache=False,
                                              progress=False)) > 1e-2  # the tolerance is meaningful
    np.testing.assert_allclose(vm.test_accuracy, seq.test_accuracy, atol=1 / 200 + 1e-9)
    np.testing.assert_allclose(
        [h for m in vm.metrics() for h in m["loss_history"]],
        [h for m in seq.metrics() for h in m["loss_history"]], rtol=1e-4)


def test_vmap_with_batch_norm_close_to_sequential():
    c = small(arch="small_resnet", width=4, n_models=2, n_train=200, n_test=100)
    seq = train_ensemble(c, backend="sequential", cache=False, progress=False)
    vm = train_ensemble(c, backend="vmap", cache=False, progress=False)
    assert max_weight_gap(seq, vm) < 1e-4  # includes the running statistics (buffers)
    rm = [m.bn1.running_mean for m in vm.models]
    assert not torch.equal(rm[0], rm[1]) and float(rm[0].abs().max()) > 0  # updated, per model


def test_modes_vary_what_they_say():
    # lr so small that the weights stay at their initialisation: init differs iff the mode says so.
    for mode, init_differs in [("diffinit", True), ("difforder", False), ("diffdata", False), ("alldiff", True)]:
        ens = train_ensemble(small(mode=mode, n_models=2, epochs=1, lr=1e-9, schedule="constant"),
                             backend="sequential", cache=False, progress=False)
        gap = float((ens.models[0].classifier.weight - ens.models[1].classifier.weight).abs().max().detach())
        assert (gap > 1e-3) == init_differs, (mode, gap)


def test_diffdata_draws_a_subset_per_model():
    c = small(mode="diffdata", n_models=3)
    ens = train_ensemble(c, backend="sequential", progress=False)
    idx = [np.asarray(m["train_indices"]) for m in ens.metrics()]
    train0, test = load_data(c.data)
    np.testing.assert_array_equal(idx[0], train0.indices)  # model 0 = the config's subset
    np.testing.assert_array_equal(ens.data()[0].indices, train0.indices)
    assert all(len(i) == c.data.n_train and len(np.unique(i)) == c.data.n_train for i in idx)
    assert not np.array_equal(idx[0], idx[1]) and not np.array_equal(idx[1], idx[2])
    shared = train_ensemble(c.replace(mode="diffinit"), backend="sequential", progress=False)
    assert all(np.array_equal(m["train_indices"], idx[0]) for m in shared.metrics())


# ------------------------------------------------------------------------------------------
# Checkpoints, resume, cache
# ------------------------------------------------------------------------------------------
def test_cache_hit_trains_nothing(monkeypatch):
    c = small(seed=10)
    first = train_ensemble(c, backend="sequential", progress=False)
    assert first.n_trained == 3
    stamps = {p: p.stat().st_mtime_ns for p in first.directory.glob("seed_*.pt")}
    counter = Counter()
    monkeypatch.setattr(backends, "train_seed", counter)
    again = train_ensemble(c, backend="sequential", progress=False)
    assert counter.calls == [] and again.n_trained == 0
    assert {p: p.stat().st_mtime_ns for p in again.directory.glob("seed_*.pt")} == stamps
    assert_bit_identical(first, again)
    # Any backend is a cache hit too.
    assert train_ensemble(c, backend="processes", progress=False).n_trained == 0


def test_checkpoints_are_plain_and_atomic():
    ens = train_ensemble(small(seed=20), backend="sequential", progress=False)
    files = sorted(p.name for p in ens.directory.iterdir())
    assert files == ["config.json", "seed_00020.pt", "seed_00021.pt", "seed_00022.pt"]  # no temp files
    ck = torch.load(ens.directory / "seed_00021.pt", weights_only=True)
    assert ck["seed"] == 21 and ck["test_accuracy"] == ens.test_accuracy[1]
    assert len(ck["loss_history"]) == 2 and set(ck["state_dict"]) == set(ens.models[1].state_dict())


def test_resume_after_interruption(monkeypatch):
    c = small(seed=30, n_models=4, arch="small_cnn", width=4)
    reference = train_ensemble(c, backend="sequential", cache=False, progress=False)
    killer = Counter(fail_after=2)
    monkeypatch.setattr(backends, "train_seed", killer)
    with pytest.raises(SimulatedKill):
        train_ensemble(c, backend="sequential", progress=False)
    done = sorted(tr.ensemble_dir(c).glob("seed_*.pt"))
    assert [p.name for p in done] == ["seed_00030.pt", "seed_00031.pt"]
    stamps = {p: p.stat().st_mtime_ns for p in done}
    counter = Counter()
    monkeypatch.setattr(backends, "train_seed", counter)
    resumed = train_ensemble(c, backend="sequential", progress=False)
    assert counter.calls == [2, 3] and resumed.n_trained == 2  # finished seeds not retrained
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert_bit_identical(resumed, reference)
    # A lost checkpoint is retrained alone, to the same weights.
    (tr.ensemble_dir(c) / "seed_00032.pt").unlink()
    counter.calls.clear()
    again = train_ensemble(c, backend="sequential", progress=False)
    assert counter.calls == [2]
    assert_bit_identical(again, reference)


def test_seed_finished_by_a_concurrent_run_is_skipped(monkeypatch):
    c = small(seed=60, n_models=2)
    ens = train_ensemble(c, backend="sequential", progress=False)
    counter = Counter()
    monkeypatch.setattr(backends, "train_seed", counter)
    # As if another process finished both seeds after this run listed them as missing.
    trained = backends._run_sequential(c, [0, 1], ens.directory, torch.device("cpu"), False,
                                       backends.tqdm(disable=True))
    assert trained == 0 and counter.calls == []


def test_larger_ensemble_reuses_trained_seeds():
    c = small(seed=40, n_models=2)
    train_ensemble(c, backend="sequential", progress=False)
    bigger = train_ensemble(c.replace(n_models=4), backend="sequential", progress=False)
    assert bigger.n_trained == 2 and bigger.seeds == [40, 41, 42, 43]
    assert_bit_identical(load_ensemble(c), train_ensemble(c, progress=False))


def test_load_ensemble_missing_checkpoint():
    with pytest.raises(FileNotFoundError, match="seed 50"):
        load_ensemble(small(seed=50))


def test_divergence_is_an_error():
    with pytest.raises(FloatingPointError, match="diverged"):
        train_ensemble(small(n_models=1, lr=1e12, momentum=0.0, schedule="constant"), backend="sequential",
                       cache=False, progress=False)


def test_fashion_mnist_fixture_small_cnn(fixtures_dir):
    root = Path(fixtures_dir) / "fashion_mnist"
    if not root.exists():
        pytest.skip("Fashion-MNIST fixture not committed yet")
    c = TrainConfig(data=DataConfig(name="fashion_mnist", n_train=500, n_test=200, root=str(root)),
                    arch="small_cnn", width=8, n_models=2, epochs=3)
    ens = train_ensemble(c, backend="sequential", progress=False)
    assert ens.models[0].classifier.in_features == 64
    assert ens.test_accuracy.min() > 0.5  # 10 classes: chance is 0.1


# ------------------------------------------------------------------------------------------
# Several seeds per GPU (processes on CUDA): the argument handling, on CPU
# ------------------------------------------------------------------------------------------
def test_memory_format_per_device_and_arch():
    """The one layout decision: channels-last for every conv net on CUDA; on the CPU only for
    small_cnn (measured safe and faster), never for the ResNets (oneDNN crashes on AVX2)."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [seed._memory_format(cuda, a) for a in ARCHITECTURES] == [torch.channels_last] * 3 + [
        torch.contiguous_format]
    assert seed._memory_format(torch.device("cuda:1"), "small_resnet") == torch.channels_last
    assert {a: seed._memory_format(cpu, a) == torch.channels_last for a in ARCHITECTURES} == {
        "resnet18": False, "small_resnet": False, "small_cnn": True, "mlp": False}
    # CPU ResNets, now in the standard layout, get their own cache entry (older keys: channels-last)
    assert train_config._identity(small(arch="small_resnet"))["memory_format"] == "contiguous"
    assert "memory_format" not in train_config._identity(small(arch="small_resnet"), "cuda")
    assert "memory_format" not in train_config._identity(small(arch="small_cnn"))
    assert "memory_format" not in train_config._identity(small())


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_training_loop_applies_the_memory_format(monkeypatch, fmt, cifar_fixture_md5):
    """The data take whatever _memory_format decides while training, and accuracy is computed in
    the standard layout. Checked with an MLP (its Flatten takes either layout, so no channels-last
    convolution runs on the CPU) on 3-channel images, where the two layouts' strides differ."""
    seen: list = []
    record_layer(monkeypatch, "body.0", seen)  # the MLP's Flatten sees the data as stored
    monkeypatch.setattr(seed, "_memory_format", lambda device, arch: fmt)
    cifar = Path(__file__).parent / "fixtures" / "cifar10"  # 100 + 50 images, 3x32x32
    c = small(n_models=1, epochs=1, data=DataConfig(name="cifar10", root=str(cifar), n_train=None, n_test=None))
    train_ensemble(c, backend="sequential", cache=False, progress=False)
    training = [s for s in seen if s[2]]
    assert len(training) == 2  # 100 images / batch 50
    assert all(s[0] == (fmt == torch.channels_last) for s in training)
    assert seen[-1][2] is False and seen[-1][0] is False  # accuracy: eval mode, standard layout


def test_bf16_training_loop_on_cpu(monkeypatch):
    """The GPU path's loop under bf16 autocast (CPU autocast standing in for CUDA's, the one
    line that differs): convolutions get channels-last inputs (small_cnn's layout on the CPU as on
    CUDA, see test_memory_format_per_device_and_arch) and compute in bf16 while training, accuracy
    is measured in float32, and the checkpoint holds float32 weights."""
    seen: list = []
    record_layer(monkeypatch, "features.3", seen)  # small_cnn's second convolution
    monkeypatch.setattr(seed, "_autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    c = TrainConfig(data=DIGITS, arch="small_cnn", width=8, n_models=1, epochs=4, lr=0.05, batch_size=50)
    ens = train_ensemble(c, backend="sequential", cache=False, progress=False)
    training = [s for s in seen if s[2]]
    evaluating = [s for s in seen if not s[2]]
    assert len(training) == 4 * 12  # 600 images / batch 50, 4 epochs
    assert all(channels_last and dtype == torch.bfloat16 for channels_last, dtype, *_ in training)
    assert evaluating and all(dtype == torch.float32 for _, dtype, *_ in evaluating)
    state = ens.models[0].state_dict()
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    assert all(math.isfinite(v) for v in ens.metrics()[0]["loss_history"])
    assert ens.test_accuracy[0] > 0.5  # 10 classes: chance is 0.1


def test_bf16_vmap_on_cpu(monkeypatch):
    """vmap (the MLP path, also on CUDA) under bf16 autocast learns as float32 does."""
    monkeypatch.setattr(seed, "_autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    c = small(n_models=2, epochs=6)
    bf16 = train_ensemble(c, backend="vmap", cache=False, progress=False)
    monkeypatch.undo()
    fp32 = train_ensemble(c, backend="vmap", cache=False, progress=False)
    assert max_weight_gap(bf16, fp32) > 0  # autocast did change the arithmetic
    assert bf16.test_accuracy.min() > 0.8
    assert abs(bf16.test_accuracy.mean() - fp32.test_accuracy.mean()) < 0.05


# ------------------------------------------------------------------------------------------
# The per-seed function, the one SGD step, the one device resolution
# ------------------------------------------------------------------------------------------
def test_train_seed_is_what_the_backends_run(tmp_path):
    c = small(n_models=2, arch="small_cnn", width=4, mode="alldiff")
    metrics = train_seed(c, 1, tmp_path, device="cpu")
    ref = train_ensemble(c, backend="sequential", cache=False, progress=False)
    ck = torch.load(tmp_path / "seed_00001.pt", weights_only=True)
    state = ref.models[1].state_dict()
    assert ck["state_dict"].keys() == state.keys()
    assert all(torch.equal(ck["state_dict"][k], v) for k, v in state.items())
    assert metrics["seed"] == 1 and metrics["test_accuracy"] == ref.test_accuracy[1]
    assert "loss_history" not in metrics and len(ck["loss_history"]) == c.epochs


@pytest.mark.parametrize("kwargs,match", [
    (dict(m=2), r"m must be an integer >= 0 and <= 1"),
    (dict(m=True), r"m must be an integer"),
    (dict(directory=5), r"directory must be a path"),
    (dict(device="gpu"), r"device must be None, a device name"),
    (dict(progress="no"), r"progress must be True or False"),
    (dict(train_set="x"), r"train_set must be an ImageSet"),
    (dict(config="tiny"), r"config must be a TrainConfig"),
])
def test_train_seed_bad_input(tmp_path, kwargs, match):
    args = dict(config=small(n_models=2), m=0, directory=tmp_path) | kwargs
    with pytest.raises(ValueError, match=match):
        train_seed(args.pop("config"), args.pop("m"), args.pop("directory"), **args)
    assert not list(tmp_path.iterdir())


def test_one_sgd_step_for_the_single_and_the_stacked_loop(monkeypatch):
    assert backends._sgd_step is seed._sgd_step
    shapes: list = []
    real = seed._sgd_step

    def counting(opt, lr, device, losses):
        out = real(opt, lr, device, losses)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(seed, "_sgd_step", counting)
    monkeypatch.setattr(backends, "_sgd_step", counting)
    c = small(n_models=2, epochs=1)  # 600 images / batch 50: 12 steps per epoch
    train_ensemble(c, backend="sequential", cache=False, progress=False)
    assert shapes == [()] * 24  # one model per step, two seeds
    shapes.clear()
    train_ensemble(c, backend="vmap", cache=False, progress=False)
    assert shapes == [(2,)] * 12  # both models in every step


def test_resolve_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_device("cpu") == cpu and resolve_device(cpu) == cpu
    assert resolve_device(None) == (cuda if torch.cuda.is_available() else cpu)
    # Ray tasks: decided by the GPUs each task asks for, not by this machine
    assert resolve_device(None, num_gpus=0) == cpu and resolve_device(None, num_gpus=0.25) == cuda
    assert resolve_device("cuda:3", num_gpus=1) == cuda  # Ray shows each task its own GPUs
    for device, kwargs, match in [("gpu", {}, "device must be None"), ([1], {}, "device must be None"),
                                  ("cuda", {"num_gpus": 0}, r"num_gpus > 0"),
                                  ("cpu", {"num_gpus": 1}, "reserve GPUs"),
                                  ("meta", {"num_gpus": 0}, "CPU or CUDA device"),
                                  (None, {"num_gpus": -1}, "num_gpus must be")]:
        with pytest.raises(ValueError, match=match):
            resolve_device(device, **kwargs)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch.cuda.is_available"):
            resolve_device("cuda:0")
    # the cache key of another machine's GPU ensemble needs no GPU here
    assert tr.ensemble_dir(small(), device="cuda:0") == tr.ensemble_dir(small(), device="cuda")


def test_configs_and_profiles_need_no_torch():
    code = ("import sys; from ift_core.train.config import PROFILE_NAMES, get_profile; "
            "from ift_core.data import DataConfig, SUBPOPULATION_TRANSFORMS, DATASETS; "
            "import ift_core.models as m; c = get_profile('paper', n_models=3); "
            "print(PROFILE_NAMES, c.n_models, m.feature_dim(c.arch), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["('tiny',", "'cpu',", "'paper')", "3", "512", "False"]
    assert tr.PROFILE_NAMES == tuple(PROFILES)


def test_gpu_slots_round_robin():
    assert backends._gpu_slots([0, 1], 3) == [0, 1, 0, 1, 0, 1]
    assert backends._gpu_slots([2], 2) == [2, 2]
    # a pool smaller than all slots still spreads over the GPUs
    assert sorted(backends._gpu_slots([0, 1, 2], 2)[:3]) == [0, 1, 2]


def test_worker_takes_one_gpu_slot(monkeypatch):
    import queue

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(backends, "_WORKER_DEVICE", "cpu")
    monkeypatch.setattr(seed, "_DATA_MEMO", {})
    slots = queue.Queue()
    for g in (1, 0):
        slots.put(g)
    data = load_data(DIGITS)
    try:
        backends._worker_init("key", data, slots)
        assert chosen == [1] and backends._WORKER_DEVICE == "cuda:1" and seed._DATA_MEMO["key"] is data
        backends._worker_init("key", data, slots)
        assert chosen == [1, 0] and backends._WORKER_DEVICE == "cuda:0"
        backends._worker_init("key", data)  # a CPU pool leaves the device alone
        assert backends._WORKER_DEVICE == "cuda:0" and chosen == [1, 0]
    finally:
        torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------
# Cache keys: sub-population fields and device type only when they matter
# ------------------------------------------------------------------------------------------
def test_cache_key_leaves_out_defaults():
    c = small()
    ident = train_config._identity(c)
    assert "device_type" not in ident
    assert not any(k.startswith("subpopulation") for k in ident["data"])
    # keys made before these fields existed stay valid: the book's earlier CPU ensemble
    old_cpu = get_profile("cpu", n_models=10, n_train=10_000, n_test=2_000)
    assert tr.ensemble_dir(old_cpu, device="cpu").name == "f0b60e717de51893"
    assert tr.ensemble_dir(get_profile("tiny"), device="cpu").name == "c0c67b0378822060"
    # r = 0 is the ordinary ensemble whatever the transform; r > 0 is its own entry
    plain = tr.ensemble_dir(c, device="cpu")
    assert tr.ensemble_dir(small(subpopulation_transform="invert", subpopulation_seed=3), device="cpu") == plain
    sub = small(subpopulation_per_class=2)
    assert tr.ensemble_dir(sub, device="cpu") != plain
    assert train_config._identity(sub)["data"]["subpopulation_per_class"] == 2
    assert tr.ensemble_dir(sub.replace(subpopulation_transform="invert"), device="cpu") != tr.ensemble_dir(
        sub, device="cpu")
    # GPU runs (bf16) never share an entry with CPU runs
    assert train_config._identity(c, "cuda")["device_type"] == "cuda"
    assert tr.ensemble_dir(c, device="cuda") != plain
    assert tr.ensemble_dir(c, device="cuda:1") == tr.ensemble_dir(c, device="cuda")


def test_subpopulation_config_trains_on_the_construction():
    c = small(subpopulation_per_class=5, subpopulation_transform="rotate90+invert", n_models=2)
    ens = train_ensemble(c, backend="sequential", progress=False)
    train, test = load_data(c.data)
    plain_train, plain_test = load_data(DIGITS)
    assert torch.equal(test.x, plain_test.x) and not torch.equal(train.x, plain_train.x)
    assert torch.equal(ens.data()[0].x, train.x)
    # the recorded training accuracy is the model's accuracy on the constructed set
    for model, acc in zip(ens.models, ens.train_accuracy):
        with torch.no_grad():
            got = int((model(train.x).argmax(1) == train.y).sum()) / len(train)
        assert got == pytest.approx(acc, abs=1e-12)
    # a different data description: different weights than the ordinary ensemble
    plain = train_ensemble(small(n_models=2), backend="sequential", cache=False, progress=False)
    assert max_weight_gap(ens, plain) > 1e-3
    assert train_ensemble(c, backend="vmap", progress=False).n_trained == 0  # the normal cache


def test_subpopulation_with_own_subsets_per_model():
    c = small(mode="diffdata", subpopulation_per_class=3)
    plain = small(mode="diffdata")
    own, own_plain = seed._model_train_set(c, 1), seed._model_train_set(plain, 1)
    assert np.array_equal(own.indices, own_plain.indices) and torch.equal(own.y, own_plain.y)
    changed = (own.x != own_plain.x).flatten(1).any(1).numpy()
    assert np.bincount(own.y.numpy()[changed], minlength=10).tolist() == [3] * 10


@pytest.mark.slow  # two spawned workers each import torch
def test_processes_train_the_subpopulation_bit_for_bit():
    c = small(subpopulation_per_class=4, n_models=2)
    seq = train_ensemble(c, backend="sequential", cache=False, progress=False)
    proc = train_ensemble(c, backend="processes", n_workers=2, cache=False, progress=False)
    assert_bit_identical(seq, proc)
    assert max_weight_gap(seq, train_ensemble(small(n_models=2), backend="sequential", cache=False,
                                              progress=False)) > 1e-3  # the workers saw the construction
