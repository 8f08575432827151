"""The GPU path on a CUDA GPU: bf16, channels-last, determinism, several seeds per GPU.

Skipped without a GPU. ``scripts/gpu_check.sh`` runs this file on a machine that has one.
``IFT_GPU_TESTS_DEVICE=cpu`` runs the same tests on the CPU to check the tests themselves;
the bf16 assertions then expect float32, and ``seeds_per_gpu`` becomes ``n_workers``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ensemble_checks import assert_bit_identical, record_layer, weights
from ift_core.activations import extract_activations
from ift_core.data import DataConfig
from ift_core.train import TrainConfig, ensemble_dir, load_ensemble, train_ensemble

DEVICE = os.environ.get("IFT_GPU_TESTS_DEVICE", "cuda")
ON_GPU = DEVICE == "cuda"
if ON_GPU:  # cuBLAS reads it at its first use, which may come before ift_core.train sets it
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

pytestmark = pytest.mark.skipif(ON_GPU and not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (scripts/gpu_check.sh runs it on one)")

FASHION = Path(__file__).parent / "fixtures" / "fashion_mnist"  # 2,000 + 1,000 real images


def conv(**changes) -> TrainConfig:
    """A small ResNet on real Fashion-MNIST images: the paper profile's code path, in seconds."""
    base = TrainConfig(data=DataConfig(name="fashion_mnist", n_train=1000, n_test=500, root=str(FASHION)),
                       arch="small_resnet", width=8, n_models=2, epochs=5)
    return base.replace(**changes)


def test_gpu_training_learns_and_is_deterministic():
    a = train_ensemble(conv(), device=DEVICE, backend="sequential", cache=False, progress=False)
    b = train_ensemble(conv(), device=DEVICE, backend="sequential", cache=False, progress=False)
    assert_bit_identical(a, b)  # deterministic cuDNN and cuBLAS: same seed, same weights
    assert all(m["device"].startswith(DEVICE) for m in a.metrics())
    assert a.test_accuracy.min() > 0.5  # 10 classes: chance is 0.1
    assert all(next(m.parameters()).device.type == "cpu" for m in a.models)  # returned on the CPU


def test_gpu_loop_runs_bf16_on_channels_last(monkeypatch):
    """The CUDA loop: bf16 autocast on channels-last data; float32 accuracy and weights."""
    seen: list = []
    record_layer(monkeypatch, "layer2.0.conv1", seen)
    ens = train_ensemble(conv(n_models=1, epochs=1), device=DEVICE, backend="sequential", cache=False,
                         progress=False)
    training = [s for s in seen if s[2]]
    assert len(training) == 10  # 1,000 images / batch 100
    # channels-last on CUDA; on the CPU (IFT_GPU_TESTS_DEVICE=cpu) the ResNet trains in NCHW (oneDNN's AVX2
    # channels-last kernels crash it)
    assert all(s[0] == ON_GPU for s in training)
    assert all(s[3] == DEVICE for s in seen)  # the data were on the device
    assert all(s[1] == (torch.bfloat16 if ON_GPU else torch.float32) for s in training)
    assert all(s[1] == torch.float32 for s in seen if not s[2])  # accuracy in float32
    assert all(v.dtype == torch.float32 for v in weights(ens)[0].values() if v.is_floating_point())


def test_seeds_sharing_a_gpu_equal_sequential():
    c = conv(n_models=3, epochs=2)
    seq = train_ensemble(c, device=DEVICE, backend="sequential", cache=False, progress=False)
    shared = dict(seeds_per_gpu=2) if ON_GPU else dict(n_workers=2)
    par = train_ensemble(c, device=DEVICE, backend="processes", cache=False, progress=False, **shared)
    assert_bit_identical(seq, par)
    assert {m["backend"] for m in par.metrics()} == {"processes"}
    assert all(m["device"].startswith(DEVICE) for m in par.metrics())  # the workers trained on the GPU


def test_vmap_on_gpu_learns():
    c = TrainConfig(data=DataConfig(name="digits", n_train=600, n_test=200), arch="mlp", width=32,
                    n_models=3, epochs=6, lr=0.05, batch_size=50)
    a = train_ensemble(c, device=DEVICE, backend="vmap", cache=False, progress=False)
    b = train_ensemble(c, device=DEVICE, backend="vmap", cache=False, progress=False)
    assert_bit_identical(a, b)
    assert a.test_accuracy.min() > 0.8


def test_gpu_ensemble_has_its_own_cache_entry():
    c = conv(n_models=1, epochs=1, seed=7)
    trained = train_ensemble(c, device=DEVICE, progress=False)
    assert trained.directory == ensemble_dir(c, device=DEVICE)
    if ON_GPU:
        assert trained.directory != ensemble_dir(c, device="cpu")
    again = train_ensemble(c, device=DEVICE, progress=False)
    assert again.n_trained == 0
    assert_bit_identical(trained, load_ensemble(c, device=DEVICE))


def test_gpu_training_accuracy_close_to_cpu():
    """bf16 changes the arithmetic, not what is learned: the same seeds reach about the same accuracy."""
    c = conv(n_models=2)
    gpu = train_ensemble(c, device=DEVICE, backend="sequential", cache=False, progress=False)
    cpu = train_ensemble(c, device="cpu", backend="sequential", cache=False, progress=False)
    assert abs(gpu.test_accuracy.mean() - cpu.test_accuracy.mean()) < 0.1  # early in training, 500 test images


@pytest.fixture
def no_tf32():
    """Plain float32 on the GPU: TF32 would flip the near-ties of a barely trained model."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_gpu_activations_match_cpu(no_tf32):
    ens = train_ensemble(conv(n_models=2, epochs=1, seed=11), device="cpu", progress=False)
    _, test = ens.data()
    acts_dev, logits_dev = extract_activations(ens.models, test.x, device=DEVICE)
    acts_cpu, logits_cpu = extract_activations(ens.models, test.x, device="cpu")
    # float32 on both, summed in different orders
    scale = float(np.abs(acts_cpu).max())
    np.testing.assert_allclose(acts_dev, acts_cpu, rtol=0, atol=2e-2 * scale)
    assert (logits_dev.argmax(-1) == logits_cpu.argmax(-1)).mean() > 0.99
    assert all(next(m.parameters()).device.type == "cpu" for m in ens.models)  # put back


def test_ray_shares_a_gpu_between_seeds():
    """Two Ray tasks with half a GPU each train at once, and give what sequential gives."""
    pytest.importorskip("ray")
    c = conv(n_models=2, epochs=2)
    seq = train_ensemble(c, device=DEVICE, backend="sequential", cache=False, progress=False)
    resources = {"num_gpus": 0.5} if ON_GPU else {"num_cpus": 1}
    par = train_ensemble(c, backend="ray", ray_resources=resources, cache=False, progress=False)
    assert_bit_identical(seq, par)
    assert all(m["device"].startswith(DEVICE) for m in par.metrics())
