"""Wall time of training 8 seeds: sequential vs processes vs vmap, for an MLP and a small CNN.

All rows are measured in one run on the same machine, so the ratios compare like with like
(the absolute times depend on the machine and its load, printed alongside).

    .venv/bin/python benchmarks/bench_train.py [--seeds 8] [--n-train 10000] [--epochs 2]

``processes`` pays a fixed start-up cost (each spawned worker imports torch); it wins when a
seed trains long enough for that to amortise and there is more than one core.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from ift_core.data import DataConfig
from ift_core.train import TrainConfig, train_ensemble


def _load() -> str:
    try:
        return f"load average {' / '.join(f'{v:.1f}' for v in os.getloadavg())}"
    except OSError:
        return "load average unavailable"


def _time(config: TrainConfig, backend: str, n_workers: int | None) -> tuple[float, float]:
    t0 = time.perf_counter()
    ens = train_ensemble(config, backend=backend, cache=False, progress=False, n_workers=n_workers)
    return time.perf_counter() - t0, float(ens.test_accuracy.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=None, help="processes backend workers (default: cores)")
    p.add_argument("--dataset", default="fashion_mnist")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = DataConfig(name=args.dataset, n_train=args.n_train, n_test=1000)
    configs = {
        "mlp": TrainConfig(data=data, arch="mlp", width=None, n_models=args.seeds, epochs=args.epochs),
        "small_cnn": TrainConfig(data=data, arch="small_cnn", width=None, n_models=args.seeds, epochs=args.epochs),
    }
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.seeds} seeds, {args.dataset} {args.n_train} images x {args.epochs} epochs, batch 100; "
          f"{cores} usable cores; torch {torch.__version__}")
    print(f"before: {_load()}")
    rows = []
    for arch, config in configs.items():
        train_ensemble(config.replace(n_models=1, epochs=1), backend="sequential", cache=False,
                       progress=False)  # warm-up: data read, first-call overheads
        times = {}
        for backend in ("sequential", "processes", "vmap"):
            wall, acc = _time(config, backend, args.workers)
            times[backend] = wall
            rows.append((arch, backend, wall, acc))
            print(f"  {arch:10s} {backend:11s} {wall:7.1f} s   mean test acc {acc:.3f}   ({_load()})", flush=True)
    print()
    print(f"{'arch':10s} {'sequential':>11s} {'processes':>11s} {'vmap':>11s} {'seq/proc':>9s} {'seq/vmap':>9s}")
    for arch in configs:
        t = {b: w for a, b, w, _ in rows if a == arch}
        print(f"{arch:10s} {t['sequential']:10.1f}s {t['processes']:10.1f}s {t['vmap']:10.1f}s "
              f"{t['sequential'] / t['processes']:8.2f}x {t['sequential'] / t['vmap']:8.2f}x")
    print(f"after: {_load()}")


if __name__ == "__main__":  # the processes backend spawns workers that import this file
    main()
