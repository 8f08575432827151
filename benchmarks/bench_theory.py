"""Benchmark ift_core.theory: closed forms over 100,000 settings, and closed form vs Monte Carlo.

Run: ``.venv/bin/python benchmarks/bench_theory.py`` (numpy only, single process).

Prints
1. the time to evaluate accuracy, agreement and gap for 100,000 random two-group settings
   with one vectorised call (and the per-setting loop over ``FeatureModel`` for scale);
2. the speed ratio of the closed form to Monte Carlo *at equal precision*: Monte Carlo's
   standard error on accuracy falls as ``1/sqrt(reps)``; from a pilot run we extrapolate the
   replicates, hence the time, needed to reach a standard error of 1e-3 and 1e-4, and divide
   by the closed form's time for the same setting (its own error is ~1e-15).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ift_core import theory as th


def _random_params(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t_d = rng.integers(2, 100, n)
    t_r = rng.integers(10, 5000, n)
    return dict(t_d=t_d, t_r=t_r, n_d=np.minimum(rng.integers(1, 8, n), t_d), n_r=np.minimum(rng.integers(1, 8, n), t_r),
                p_d=rng.uniform(0, 1, n), p_r=rng.uniform(0, 1, n), alpha_d=rng.uniform(0, 1, n),
                n_train=rng.integers(10, 50_000, n), n_classes=rng.integers(2, 11, n),
                p_systematic=rng.uniform(0, 1, n))


def bench_grid(n: int = 100_000, repeat: int = 3) -> float:
    params = _random_params(n)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = th.evaluate(**params)
        times.append(time.perf_counter() - t0)
    assert out["gap"].shape == (n,)
    best = min(times)
    print(f"closed form, {n:,} settings, one vectorised call: {best:.3f} s "
          f"({n / best:,.0f} settings/s, {1e6 * best / n:.2f} us/setting)")
    # the scalar path, for scale
    k = 300
    t0 = time.perf_counter()
    for i in range(k):
        th.FeatureModel(**{p: v[i].item() for p, v in params.items()}).metrics()
    loop = (time.perf_counter() - t0) / k
    print(f"closed form, FeatureModel(...).metrics() one at a time: {1e6 * loop:.0f} us/setting "
          f"(vectorised is {loop / (best / n):,.0f}x faster per setting)")
    return best / n


def bench_mc_vs_closed() -> None:
    settings = {
        "default (K=2, shared)": th.FeatureModel(),
        "K=3, beta=0.8": th.FeatureModel(n_classes=3, p_systematic=0.8),
        "independent, N=200": th.FeatureModel(training="independent", n_train=200, t_r=100, p_r=0.5),
    }
    n_models, n_points, pilot = 4, 500, 200
    for name, fm in settings.items():
        t0 = time.perf_counter()
        for _ in range(200):
            fm.metrics()
        closed = (time.perf_counter() - t0) / 200
        t0 = time.perf_counter()
        mc = th.monte_carlo(fm, n_reps=pilot, n_models=n_models, n_points=n_points, seed=0)
        mc_time = time.perf_counter() - t0
        se1 = mc["accuracy_se"] * math.sqrt(pilot)  # standard deviation of one replicate
        z = (mc["accuracy"] - fm.expected_accuracy()) / mc["accuracy_se"]
        print(f"\n{name}: closed {1e3 * closed:.3f} ms; Monte Carlo {pilot} reps x {n_models} models x "
              f"{n_points} points: {mc_time:.2f} s, se {mc['accuracy_se']:.1e}, z {z:+.2f}")
        for eps in (1e-3, 1e-4):
            reps = math.ceil((se1 / eps) ** 2)
            t_mc = mc_time / pilot * reps
            print(f"  to reach se {eps:.0e} on accuracy: ~{reps:,} reps, ~{t_mc:,.1f} s -> "
                  f"closed form is {t_mc / closed:,.0f}x faster")


def main() -> None:
    print("== ift_core.theory benchmark ==")
    bench_grid()
    bench_mc_vs_closed()


if __name__ == "__main__":
    main()
