"""Benchmark ift_core.theory.readings: each reading's closed form over many settings, and the statements table.

Run: ``.venv/bin/python benchmarks/bench_readings.py [--full]`` (numpy only, single process).

Prints
1. per reading, the time of one vectorised ``expected_metrics`` call over 20,000 random settings
   (``shared_capacity`` is a numerically exact DFT per distinct setting, the others closed forms);
2. the time of ``statements_table`` on the book's default grid (chapter 9 computes it in its build),
   and with ``--full`` on the full grid.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from ift_core.theory import readings as rd


def _random_params(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t_d, t_r = rng.integers(2, 100, n), rng.integers(10, 2000, n)
    return dict(t_d=t_d, t_r=t_r, n_d=np.minimum(rng.integers(1, 6, n), t_d), n_r=np.minimum(rng.integers(1, 6, n), t_r),
                p_d=rng.uniform(0, 1, n), p_r=rng.uniform(0, 1, n), alpha_d=rng.uniform(0, 1, n),
                n_train=rng.integers(10, 5000, n), n_classes=rng.integers(2, 11, n))


def bench_readings(n: int = 20_000) -> None:
    params = _random_params(n)
    for reading in rd.READINGS:
        t0 = time.perf_counter()
        out = rd.expected_metrics(reading=reading, **params)
        dt = time.perf_counter() - t0
        assert out["gap"].shape == (n,)
        print(f"{reading:>16}: {n:,} settings in {dt:.3f} s ({1e6 * dt / n:.1f} us/setting)")


def bench_table(full: bool) -> None:
    t0 = time.perf_counter()
    tab = rd.statements_table(full=full)
    dt = time.perf_counter() - t0
    main = rd.main_reading(tab)
    print(f"statements_table({'full' if full else 'quick'} grid, {int(tab['bases'].iloc[0])} bases, "
          f"{len(tab)} variants): {dt:.1f} s; chooses {main['reading']}, {main['weighting']}, {main['coupling']}")


if __name__ == "__main__":
    bench_readings()
    bench_table(full=False)
    if "--full" in sys.argv:
        bench_table(full=True)
