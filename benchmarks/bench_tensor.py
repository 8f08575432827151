"""Speed and memory of ift_core.tensor.build_interaction_tensor.

Reports, in one run:
1. time and peak memory (tracemalloc: numpy's allocations, the input excluded) for
   M=20 models, N=10,000 points, D=512 units, K=50 components, with the stage timings;
2. the ratio to the plain-loop reference of Algorithm 1 kept in tests/test_tensor.py
   (pair-by-pair Pearson correlations, loops over openers and candidates, loops over
   points for presence), on the same PCA scores:
   - the clustering alone, both on the full-size (1000 x 1000) correlation matrix (measured);
   - the whole pipeline on a small case (measured) and on the full case (the loop
     reference's correlation and presence stages extrapolated from the small case by their
     operation counts; stated as such in the output);
3. PCA accuracy on every kept component: scores against a float64 numpy SVD on
   planted data whose K components reach into the noise (variance ratios up to ~1e4), for the
   float64 PCA of principal_components and, as the before picture, a float32 Gram matrix with
   a float32 eigensolver (the previous implementation); and the PCA's time against the SVD's;
4. a scaling table over M in {10, 20, 50, 100} x N in {10k, 50k} (D=512, K=50) on synthetic
   activations generated model by model inside a lazy sequence; the generation time is
   measured and subtracted.

Wall time and CPU time (process_time, all threads) are both printed: the PCA runs whole models
on up to min(cores, 4) threads (BLAS at one thread each), so on a machine that other jobs also
use the CPU time is the number that does not depend on them.

Synthetic activations: a shared low-rank signal (the same 64 latent directions for all
models, each model mixing them with its own random map), ReLU, and noise. Timing does not
depend on their content except through T (the clustering loop runs once per feature).

Usage: python benchmarks/bench_tensor.py [--threads 1] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ift_core.tensor import _n_workers  # noqa: E402
from ift_core.tensor import (  # noqa: E402
    build_interaction_tensor,
    cluster_components,
    component_correlations,
    component_presence,
    correlation_threshold,
    principal_components,
    split_frequencies,
)


class SyntheticActivations:
    """A lazy (M, N, D) sequence: model m is generated when indexed (timed in ``gen_seconds``)."""

    def __init__(self, n_models: int, n_points: int, width: int = 512, n_latent: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.n_models, self.n_points, self.width = n_models, n_points, width
        self.latent = (rng.standard_normal((n_points, n_latent), dtype=np.float32)
                       * np.geomspace(4, 0.5, n_latent).astype(np.float32))
        self.noise = 0.3 * rng.standard_normal((n_points, width), dtype=np.float32)
        self.seed = seed
        self.gen_seconds = 0.0

    def __len__(self) -> int:
        return self.n_models

    def __getitem__(self, m: int) -> np.ndarray:
        t0 = time.perf_counter()
        rng = np.random.default_rng((self.seed, m))
        w = rng.standard_normal((self.latent.shape[1], self.width), dtype=np.float32) / 8.0
        # Row-shifted noise: independent across models without drawing 25M numbers each time.
        out = np.roll(self.noise, 997 * m + 1, axis=0)
        out += self.latent @ w
        np.maximum(out, 0, out=out)
        self.gen_seconds += time.perf_counter() - t0
        return out


def _timed_build(acts, **kw):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    it = build_interaction_tensor(acts, progress=False, **kw)
    sec = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return it, sec, peak


def _reference_pipeline(scores, gamma_quantile=0.99, presence_quantile=0.9):
    """The tests' loop reference on given PCA scores; returns per-stage seconds."""
    from test_tensor import reference_cluster, reference_corr, reference_presence

    mm, _, k = scores.shape
    t0 = time.perf_counter()
    corr = reference_corr(scores)
    t1 = time.perf_counter()
    cross = [abs(corr[i, j]) for i in range(mm * k) for j in range(i + 1, mm * k) if i // k != j // k]
    gamma = float(np.float32(np.quantile(np.array(cross, dtype=np.float32), gamma_quantile)))
    assign, _ = reference_cluster(corr, gamma)
    t2 = time.perf_counter()
    reference_presence(scores, presence_quantile)
    t3 = time.perf_counter()
    return {"correlation": t1 - t0, "cluster": t2 - t1, "presence": t3 - t2, "T": int(assign.max()) + 1}


def _float32_gram_pca(a: np.ndarray, k: int) -> np.ndarray:
    """The previous PCA: float32 centring, Gram matrix, eigensolver and projection."""
    import scipy.linalg

    x = a - a.mean(axis=0, dtype=np.float64).astype(np.float32)
    d = x.shape[1]
    _, v = scipy.linalg.eigh(x.T @ x, subset_by_index=[d - k, d - 1], driver="evx", check_finite=False)
    return x @ np.ascontiguousarray(v[:, ::-1])


def _pca_accuracy() -> None:
    """Largest error of any kept component's scores, relative to that column's largest |value|."""
    from test_tensor import planted

    print("\n== PCA accuracy against float64 numpy.linalg.svd (max over components of max |error| / max |score|)")
    print(f"{'N':>6} {'D':>5} {'K':>4} {'float64 PCA':>12} {'float32 Gram':>13} {'PCA s':>7} {'SVD s':>7}")
    for n, d, k in [(2000, 32, 20), (10_000, 64, 50), (10_000, 512, 50)]:
        acts, _, _ = planted(0, n_models=2, n_points=n, width=d, n_pool=12, n_shared=6, n_distract=2, noise=0.05)
        a = acts[1] + np.float32(3.0)
        t0 = time.perf_counter()
        x = a.astype(np.float64) - a.mean(axis=0, dtype=np.float64)
        u, sv, _ = np.linalg.svd(x, full_matrices=False)
        ref = u[:, :k] * sv[:k]
        svd_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = principal_components([a], n_components=k, progress=False).scores[0].astype(np.float64)
        pca_s = time.perf_counter() - t0
        old = _float32_gram_pca(a, k).astype(np.float64)
        errs = []
        for got in (ours, old):
            got = got * np.sign((got * ref).sum(axis=0))
            errs.append((np.abs(got - ref).max(axis=0) / np.abs(ref).max(axis=0)).max())
        print(f"{n:>6} {d:>5} {k:>4} {errs[0]:>12.1e} {errs[1]:>13.1e} {pca_s:>7.3f} {svd_s:>7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads for the matmuls (default 1: on a shared 2-core machine "
                         "OpenBLAS threads slowed every step down); 0 = library default")
    ap.add_argument("--quick", action="store_true", help="smaller scaling table (N=10k only, M<=50)")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    limit = None if args.threads == 0 else args.threads
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, BLAS threads: "
          f"{'default' if limit is None else limit}")
    with threadpool_limits(limits=limit, user_api="blas"):
        # ---------------------------------------------------------------- 1. the main case
        m, n, d, k = 20, 10_000, 512, 50
        lazy = SyntheticActivations(m, n, d)
        acts = np.stack([lazy[i] for i in range(m)])
        del lazy
        build_interaction_tensor(acts[:2, :2000], n_components=k, progress=False)  # warm-up
        secs, cpus, stages = [], [], {}
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            it = build_interaction_tensor(acts, n_components=k, progress=False)
            secs.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            if secs[-1] == min(secs):
                stages = {s: round(v, 3) for s, v in it.timings.items()}
        _, _, peak = _timed_build(acts, n_components=k)
        split_frequencies(it.feature_frequency())  # warm-up: the first mixture split imports scikit-learn (~1 s)
        t0 = time.perf_counter()
        it.feature_frequency(), it.features_per_point(per_model=True), it.overlap(), it.points_table()
        stats_sec = time.perf_counter() - t0
        print(f"\n== M={m} N={n} D={d} K={k}: T={it.n_features}, gamma_corr={it.corr_threshold:.3f}")
        print(f"build_interaction_tensor: best {min(secs):.2f} s, runs {[round(s, 2) for s in secs]} "
              f"(input {acts.nbytes / 2**20:.0f} MiB float32); CPU time {[round(c, 2) for c in cpus]} s "
              f"on {_n_workers(m)} PCA thread(s); load average now {os.getloadavg()[0]:.2f}")
        print(f"stages of the best run (s): {stages}")
        print(f"peak memory beyond the input (tracemalloc): {peak / 2**20:.0f} MiB; "
              f"statistics + tables afterwards: {stats_sec:.2f} s")

        # ---------------------------------------------------------------- 2. loop reference
        from test_tensor import reference_cluster

        pc = principal_components(acts, n_components=k, progress=False)
        corr = component_correlations(pc)
        gamma = correlation_threshold(corr, m, quantile=0.99)
        t0 = time.perf_counter()
        a_vec, _ = cluster_components(corr, gamma)
        vec_cluster = time.perf_counter() - t0
        t0 = time.perf_counter()
        a_ref, _ = reference_cluster(corr, gamma)
        ref_cluster = time.perf_counter() - t0
        assert np.array_equal(a_vec, a_ref), "vectorised and loop clustering differ"
        print(f"\n== Algorithm 1 clustering alone on the full {m * k}x{m * k} matrix (measured, identical "
              f"output): loop {ref_cluster:.2f} s, vectorised {vec_cluster * 1e3:.1f} ms, "
              f"ratio {ref_cluster / vec_cluster:.0f}x")

        ms, ns = 4, 2000
        small = acts[:ms, :ns]
        sc = principal_components(small, n_components=k, progress=False).scores
        ref = _reference_pipeline(sc)
        t0 = time.perf_counter()
        c_small = component_correlations(sc)
        g_small = correlation_threshold(c_small, ms)
        cluster_components(c_small, g_small)
        component_presence(sc, quantile=0.9)
        vec_small = time.perf_counter() - t0
        ref_small = ref["correlation"] + ref["cluster"] + ref["presence"]
        print(f"\n== whole pipeline after the PCA, small case M={ms} N={ns} K={k} (measured): loop reference "
              f"{ref_small:.1f} s (corr {ref['correlation']:.1f}, cluster {ref['cluster']:.2f}, presence "
              f"{ref['presence']:.1f}), vectorised {vec_small * 1e3:.0f} ms, ratio {ref_small / vec_small:.0f}x")
        # Extrapolate the loop reference to the full case by operation counts:
        # correlation ~ (MK)^2 N, presence ~ M N K, clustering measured above.
        f_corr = (m * k) ** 2 * n / ((ms * k) ** 2 * ns)
        f_pres = m * n / (ms * ns)
        ref_full = ref["correlation"] * f_corr + ref["presence"] * f_pres + ref_cluster + stages["pca"]
        print(f"full case, loop reference EXTRAPOLATED (correlation x{f_corr:.0f}, presence x{f_pres:.0f} from "
              f"the small case; clustering measured; same PCA {stages['pca']:.2f} s): ~{ref_full:.0f} s against "
              f"{min(secs):.2f} s measured, ratio ~{ref_full / min(secs):.0f}x")

        # ---------------------------------------------------------------- 3. PCA accuracy
        del acts, pc, corr
        _pca_accuracy()

        # ---------------------------------------------------------------- 4. scaling table
        ms_grid = (10, 20, 50) if args.quick else (10, 20, 50, 100)
        ns_grid = (10_000,) if args.quick else (10_000, 50_000)
        print(f"\n== scaling (D={d}, K={k}; generation time subtracted; peak includes the model being generated"
              ")")
        print(f"{'M':>5} {'N':>7} {'T':>6} {'seconds':>8} {'pca':>7} {'corr':>7} {'cluster':>8} {'presence':>9} "
              f"{'peak MiB':>9}")
        for nn in ns_grid:
            for mm in ms_grid:
                lazy = SyntheticActivations(mm, nn, d)
                it, sec, peak = _timed_build(lazy, n_components=k)
                t = it.timings
                print(f"{mm:>5} {nn:>7} {it.n_features:>6} {sec - lazy.gen_seconds:>8.2f} "
                      f"{t['pca'] - lazy.gen_seconds:>7.2f} {t['correlation']:>7.2f} {t['cluster']:>8.2f} "
                      f"{t['presence']:>9.2f} {peak / 2**20:>9.0f}", flush=True)
                del it, lazy


if __name__ == "__main__":
    main()
