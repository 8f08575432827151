"""Speed of what a threshold sweep and a sweep of small ensembles repeat, measured in one run.

Reports ratios (reference / ours) of:
1. ``InteractionTensor.point_feature_matrix`` (OR of packed bits over the rows of a feature)
   against the boolean ``reduceat`` across columns it replaced, and
   ``features_per_point(per_model=True)`` (components present less double counts) against one
   ``reduceat`` per model; M=20, N=10,000, K=50 (the size of the book's default tensor);
2. the mixture split (``split_frequencies``, rule "mixture") asked twice for the same
   frequencies: the second call is read from the memo;
3. ``train_ensemble(backend="processes")``: a first call (starts two spawn workers) against a
   second call on other data (the same workers, kept for it), 2 small CNNs each.

Each result is checked equal to its reference before it is timed.

Usage: python benchmarks/bench_sweep.py [--no-train]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_point_statistics() -> None:
    from ift_core.tensor import _segments, build_interaction_tensor  # the references group components as the package does

    rng = np.random.default_rng(0)
    latent = rng.standard_normal((10_000, 24)).astype(np.float32)  # shared directions: features repeat
    acts = np.stack([np.maximum(latent @ rng.standard_normal((24, 64)).astype(np.float32), 0)
                     + 0.3 * rng.standard_normal((10_000, 64)).astype(np.float32) for _ in range(20)])
    it = build_interaction_tensor(acts, n_components=50, gamma_corr=0.5, progress=False)
    presence, assignments = it.presence, it.assignments
    (m, n, k), t = presence.shape, it.n_features
    print(f"tensor M={m}, N={n}, K={k}: T={t} features")

    def make():
        it._cache.clear()
        return it

    def reference_points():
        flat = presence.transpose(1, 0, 2).reshape(n, -1)
        order, starts, ids = _segments(assignments.ravel())
        out = np.zeros((n, t), dtype=bool)
        out[:, ids] = np.logical_or.reduceat(flat[:, order], starts, axis=1)
        return out

    def reference_per_model():
        out = np.empty((m, n), dtype=np.int64)
        for i in range(m):
            order, starts, _ = _segments(assignments[i])
            out[i] = np.logical_or.reduceat(presence[i][:, order], starts, axis=1).sum(axis=1)
        return out

    assert np.array_equal(make().point_feature_matrix(), reference_points())
    assert np.array_equal(make().features_per_point(per_model=True), reference_per_model())
    ours = _best_of(lambda: make().point_feature_matrix())
    ref = _best_of(reference_points)
    print(f"point_feature_matrix      {ours * 1e3:7.1f} ms, reference {ref * 1e3:7.1f} ms: {ref / ours:5.1f}x")
    ours = _best_of(lambda: make().features_per_point(per_model=True))
    ref = _best_of(reference_per_model)
    print(f"features_per_point (M, N) {ours * 1e3:7.1f} ms, reference {ref * 1e3:7.1f} ms: {ref / ours:5.1f}x")


def bench_mixture_memo() -> None:
    from ift_core import tensor

    rng = np.random.default_rng(1)
    freq = np.r_[rng.lognormal(3, 0.5, 300), rng.lognormal(7, 0.3, 60)].round()
    tensor.split_frequencies(freq + 1, rule="mixture")  # scikit-learn's import is not what is measured
    tensor._mixture_cut_of_bytes.cache_clear()
    t = time.perf_counter()
    first = tensor.split_frequencies(freq, rule="mixture")
    cold = time.perf_counter() - t
    t = time.perf_counter()
    second = tensor.split_frequencies(freq, rule="mixture")
    warm = time.perf_counter() - t
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]
    print(f"mixture split             {cold * 1e3:7.1f} ms first, {warm * 1e3:7.2f} ms again: {cold / warm:5.0f}x")


def bench_worker_reuse() -> None:
    os.environ["IFT_CACHE"] = tempfile.mkdtemp(prefix="ift-bench-")
    from ift_core.data import DataConfig
    from ift_core.train import TrainConfig, train_ensemble
    from ift_core.train.backends import close_cpu_pool

    def config(subset_seed: int) -> TrainConfig:
        return TrainConfig(data=DataConfig(name="digits", n_train=400, n_test=100, subset_seed=subset_seed),
                           arch="small_cnn", width=8, n_models=2, epochs=3, batch_size=50, lr=0.05)

    close_cpu_pool()
    t = time.perf_counter()
    train_ensemble(config(0), backend="processes", n_workers=2, cache=False, progress=False)
    first = time.perf_counter() - t
    t = time.perf_counter()
    train_ensemble(config(1), backend="processes", n_workers=2, cache=False, progress=False)
    second = time.perf_counter() - t
    close_cpu_pool()
    print(f"processes, 2 seeds        {first:7.2f} s first call, {second:7.2f} s next call: {first / second:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-train", action="store_true", help="skip the processes backend")
    args = parser.parse_args()
    bench_point_statistics()
    bench_mixture_memo()
    if not args.no_train:
        bench_worker_reuse()


if __name__ == "__main__":
    main()
