"""GPU training speed of the paper profile: images/second per seed, and the paper's 20 ResNet18.

Run: ``.venv/bin/python benchmarks/bench_gpu.py`` on a machine with a CUDA GPU. Without one it
says so and exits 0 (``--smoke`` runs the same logic on CPU with tiny sizes, to check the script).

Sections 1-3 time RANDOM-CONTENT TENSORS OF CIFAR-10'S SIZE (50,000 x 3 x 32 x 32 training
images, 10,000 test images, 10 classes), FOR TIMING ONLY: they say nothing about accuracy.
Section 0 (``--real``) trains on real images and reports accuracy.

What it measures

0. ``--real EPOCHS`` (off by default; it runs first, being the check that matters most): two
   ResNet18 seeds (the paper profile's model and optimiser) train on all of Fashion-MNIST
   (60,000 + 10,000 real images, found as ``ift_core.data`` finds them: ``$IFT_DATA``, the
   Debian folder, ...) with ``train_ensemble(device="cuda")``. It prints each seed's time,
   images per second and train / test accuracy, so the GPU path is seen to learn, not only run.
1. Seeds per GPU ``k`` (default 1, 2, 4, 8, capped by GPU memory): ``k`` worker processes
   (``spawn``) each train one seed at a time with ``ift_core.train``'s own per-seed function
   (``train_seed``: ResNet18, bf16 autocast, channels-last, data held on the GPU, deterministic
   cuDNN) on the random data, all at once on one GPU. This is what ``backend="ray"`` with
   ``ray_resources={"num_gpus": 1/k}`` does. Each process trains 1 epoch (500 steps of batch
   100), then 2 epochs; the difference is the time of one epoch (``t_epoch``), the rest the
   fixed cost of a seed (model set-up, evaluation of train and test accuracy, checkpoint).
2. Extrapolation to the paper: 20 seeds x 30 epochs. With ``k`` seeds per GPU the seeds run in
   ``ceil(20 / k)`` waves, each taking ``fixed + 30 * t_epoch`` (times measured under ``k``-way
   sharing), so ``T(k) = ceil(20 / k) * (fixed + 30 * t_epoch)``; the script prints each term.
3. Knobs (one process, ``--steps`` timed steps after warm-up, the same loop as ``train_seed``):
   train_seed's settings against cuDNN autotuning without determinism, fp32 without autocast,
   and the standard (NCHW) memory format, to show what each setting costs or saves.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

N_TRAIN, N_TEST, N_CLASSES, SHAPE = 50_000, 10_000, 10, (3, 32, 32)
PAPER_SEEDS, PAPER_EPOCHS = 20, 30
LABEL = "random-content tensors, FOR TIMING ONLY (not a data set)"
# ResNet18 reaches about 0.9 on Fashion-MNIST within a few epochs; below this it did not learn.
MIN_REAL_ACCURACY = 0.85


def _random_sets(n_train: int, n_test: int, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Random ImageSets shaped like CIFAR-10 (timing only; never a data set)."""
    from ift_core.data import ImageSet

    gen = torch.Generator().manual_seed(0)

    def one(n: int, name: str) -> ImageSet:
        return ImageSet(x=torch.randn((n, *shape), generator=gen), y=torch.randint(0, N_CLASSES, (n,), generator=gen),
                        classes=tuple(f"class{i}" for i in range(N_CLASSES)), name=name,
                        indices=np.arange(n, dtype=np.int64), mean=(0.0,) * shape[0], std=(1.0,) * shape[0])

    return one(n_train, "random-timing-only"), one(n_test, "random-timing-only")


def _config(n_train: int, epochs: int):
    from ift_core.train import get_profile

    # n_train only tells the data memo apart; the tensors come from _random_sets.
    return get_profile("paper", n_models=1, epochs=epochs, n_train=n_train)


def _train_seed(n_train: int, n_test: int, shape: tuple[int, ...], epochs: int, device: str, directory: str) -> float:
    """Wall time of one seed through ift_core.train.train_seed on random data."""
    from ift_core.train import seed as T
    from ift_core.internal import config_key

    config = _config(n_train, epochs)
    train, test = _random_sets(n_train, n_test, shape)
    T._install_data(config_key(config.data), (train, test))
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    T.train_seed(config, 0, directory, device=device, backend="benchmark", progress=False, train_set=train)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _worker(rank: int, sizes: tuple, device: str, barrier: Any, queue: Any) -> None:
    n_train, n_test, shape, n_warm = sizes
    try:
        with tempfile.TemporaryDirectory(prefix=f"ift-bench-{rank}-") as tmp:
            _train_seed(n_warm, min(n_test, n_warm), shape, 1, device, tmp)  # CUDA context, cuDNN, allocator
            barrier.wait()
            t1 = _train_seed(n_train, n_test, shape, 1, device, tmp)
            barrier.wait()
            t2 = _train_seed(n_train, n_test, shape, 2, device, tmp)
            peak = torch.cuda.max_memory_reserved() if device == "cuda" else 0
            queue.put((rank, t1, t2, peak, None))
    except BaseException as err:  # report, do not hang the parent at the barrier
        barrier.abort()
        queue.put((rank, 0.0, 0.0, 0, f"{type(err).__name__}: {err}"))


def _collect(queue: Any, procs: list, k: int) -> list[tuple]:
    """Every worker's result; an error instead of a hang when one dies without reporting
    (a crash in start-up, a fatal CUDA error, the OOM killer)."""
    import queue as queue_module

    results: list[tuple] = []
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=5))
        except queue_module.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"k={k}: a worker died without reporting (exit code {dead[0]})") from None
    return results


def bench_sharing(ks: list[int], sizes: tuple, device: str, deadline: float = math.inf) -> dict[int, dict[str, float]]:
    """k processes per GPU training at once; per-epoch and fixed seconds for each k.

    A k is started only before ``deadline`` (a ``time.perf_counter()`` value); later ones are
    reported as skipped."""
    ctx = torch.multiprocessing.get_context("spawn")
    n_train = sizes[0]
    out: dict[int, dict[str, float]] = {}
    total_mem = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else 0
    for k in ks:
        if time.perf_counter() > deadline:
            print(f"  k={k}: skipped, the time budget (--budget) is spent")
            continue
        if device == "cuda" and out:
            need = k * max(v["peak"] for v in out.values()) + k * 600e6  # + a CUDA context each
            if need > 0.9 * total_mem:
                print(f"  k={k}: skipped, would need ~{need / 2**30:.1f} GiB of {total_mem / 2**30:.1f} GiB")
                continue
        barrier, queue = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(r, sizes, device, barrier, queue)) for r in range(k)]
        for p in procs:
            p.start()
        results = _collect(queue, procs, k)
        for p in procs:
            p.join()
        errors = [e for *_, e in results if e]
        if errors:
            raise RuntimeError(f"k={k}: a worker failed: {errors[0]}")
        t1 = np.array([r[1] for r in results])
        t2 = np.array([r[2] for r in results])
        epoch = float(np.mean(t2 - t1))
        fixed = float(np.mean(t1)) - epoch
        out[k] = {"epoch": epoch, "fixed": fixed, "peak": float(max(r[3] for r in results)),
                  "per_seed_ips": n_train / epoch, "total_ips": k * n_train / epoch}
        print(f"  k={k}: t_epoch={epoch:7.2f} s  fixed={fixed:6.2f} s  per seed {n_train / epoch:9.0f} img/s  "
              f"GPU total {k * n_train / epoch:9.0f} img/s  peak mem/process {out[k]['peak'] / 2**30:5.2f} GiB")
    return out


def _time_loop(steps: int, device: str, n: int, shape: tuple[int, ...], *, autocast: bool, channels_last: bool,
               deterministic: bool) -> float:
    """Seconds per step of train_seed's inner loop (ResNet18, SGD, batch 100) under the given settings."""
    from ift_core.models import build_model

    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)  # as ift_core.train.seed._reproducible
    torch.manual_seed(0)
    dev = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model("resnet18", in_channels=shape[0], n_classes=N_CLASSES, image_size=shape[1]).to(dev)
    model = model.to(memory_format=fmt).train()
    x = torch.randn((n, *shape), device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, N_CLASSES, (n,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    cast = (lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)) if autocast and device == "cuda" \
        else (lambda: torch.autocast(device_type="cpu", enabled=False))
    batch = 100

    def step(i: int) -> None:
        idx = torch.randint(0, n, (batch,), device=dev)
        opt.zero_grad(set_to_none=True)
        with cast():
            out = model(x[idx])
        F.cross_entropy(out.float(), y[idx]).backward()
        opt.step()

    for i in range(min(20, steps)):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def bench_knobs(steps: int, device: str, n: int, shape: tuple[int, ...]) -> None:
    variants = [
        ("train_seed: bf16 + channels-last + deterministic cuDNN", dict(autocast=True, channels_last=True, deterministic=True)),
        ("  cuDNN autotuned, not deterministic", dict(autocast=True, channels_last=True, deterministic=False)),
        ("  fp32 (no autocast)", dict(autocast=False, channels_last=True, deterministic=True)),
        ("  NCHW memory format", dict(autocast=True, channels_last=False, deterministic=True)),
    ]
    base = None
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    saved_algorithms = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        for name, kw in variants:
            s = _time_loop(steps, device, n, shape, **kw)
            base = base or s
            print(f"  {name:55s} {s * 1e3:7.2f} ms/step  {100 / s:8.0f} img/s  x{base / s:4.2f} vs train_seed")
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
        torch.use_deterministic_algorithms(saved_algorithms[0], warn_only=saved_algorithms[1])


def bench_real(epochs: int, device: str, *, smoke: bool = False) -> None:
    """Two paper-profile seeds on real Fashion-MNIST through the public ``train_ensemble``."""
    from pathlib import Path

    from ift_core.train import get_profile, train_ensemble

    config = get_profile("paper", n_models=2, epochs=epochs).replace(name="fashion_mnist")
    if smoke:  # the committed 2,000-image subset, a small ResNet: checks the code, not the GPU
        fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fashion_mnist"
        config = config.replace(arch="small_resnet", width=4, n_train=200, n_test=100, root=str(fixture))
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    ens = train_ensemble(config, device=device, backend="sequential", cache=False, progress=False)
    total = time.perf_counter() - t0
    train, _ = ens.data()
    for m in ens.metrics():
        ips = len(train) * epochs / m["wall_s"]
        print(f"  seed {m['seed']}: {m['wall_s']:6.1f} s on {m['device']}, {ips:8.0f} img/s (incl. set-up and "
              f"evaluation), train acc {m['train_accuracy']:.4f}, test acc {m['test_accuracy']:.4f}")
    print(f"  {len(train)} real training images; both seeds with data loading: {total:.1f} s")
    if not smoke and min(ens.test_accuracy) < MIN_REAL_ACCURACY:
        raise RuntimeError(f"ResNet18 did not learn on the GPU: test accuracy {min(ens.test_accuracy):.4f} "
                           f"< {MIN_REAL_ACCURACY} after {epochs} epochs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds-per-gpu", default="1,2,4,8", help="comma-separated k values (default 1,2,4,8)")
    ap.add_argument("--steps", type=int, default=300, help="timed steps per knob variant (default 300)")
    ap.add_argument("--no-knobs", action="store_true", help="skip the knob comparison")
    ap.add_argument("--real", type=int, default=0, metavar="EPOCHS",
                    help="also train 2 ResNet18 seeds for EPOCHS epochs on real Fashion-MNIST (default off)")
    ap.add_argument("--budget", type=float, default=math.inf, metavar="SECONDS",
                    help="start no new k or knob comparison after SECONDS (default: no limit)")
    ap.add_argument("--smoke", action="store_true",
                    help="run on CPU with tiny sizes to check the script (numbers meaningless)")
    args = ap.parse_args(argv)
    try:
        ks = sorted({int(v) for v in args.seeds_per_gpu.split(",")})
    except ValueError:
        ap.error(f"--seeds-per-gpu must be integers separated by commas, got {args.seeds_per_gpu!r}")
    if not ks or ks[0] < 1 or args.steps < 1 or args.real < 0 or not args.budget > 0:
        ap.error("--seeds-per-gpu values and --steps must be >= 1, --real >= 0, --budget > 0")

    if args.smoke:
        device, sizes, steps = "cpu", (200, 100, (3, 8, 8), 100), min(args.steps, 3)
        torch.set_num_threads(1)
        print("SMOKE RUN on CPU with tiny random tensors: checks the script, the numbers mean nothing.")
    elif not torch.cuda.is_available():
        print("No CUDA GPU visible (torch.cuda.is_available() is False): nothing to measure, skipped.")
        return 0
    else:
        device, sizes, steps = "cuda", (N_TRAIN, N_TEST, SHAPE, 2_000), args.steps
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")
    n_train, n_test, shape, _ = sizes
    print(f"Data: {n_train} train + {n_test} test images of shape {shape} -- {LABEL}.")
    steps_per_epoch = math.ceil(n_train / 100)

    deadline = time.perf_counter() + args.budget
    failed = False
    if args.real:
        print(f"\n0. Real images: 2 ResNet18 seeds x {args.real} epochs on Fashion-MNIST through train_ensemble:")
        try:
            bench_real(args.real, device, smoke=args.smoke)
        except Exception as err:  # report it, and still time the rest
            failed = True
            print(f"  FAILED: {type(err).__name__}: {err}")

    print(f"\n1. Seeds sharing one GPU (each: ift_core.train.train_seed, ResNet18, batch 100, "
          f"{steps_per_epoch} steps/epoch; 1 epoch then 2 epochs):")
    res = bench_sharing(ks, sizes, device, deadline)

    print(f"\n2. The paper's {PAPER_SEEDS} ResNet18 x {PAPER_EPOCHS} epochs on one GPU, extrapolated:")
    print(f"   T(k) = ceil({PAPER_SEEDS}/k) waves x (fixed + {PAPER_EPOCHS} x t_epoch), times measured with k seeds sharing")
    best = None
    for k, r in res.items():
        waves = math.ceil(PAPER_SEEDS / k)
        total = waves * (r["fixed"] + PAPER_EPOCHS * r["epoch"])
        best = min(best or (total, k), (total, k))
        print(f"   k={k}: {waves:2d} x ({r['fixed']:.1f} + {PAPER_EPOCHS} x {r['epoch']:.2f}) s = {total:8.0f} s "
              f"= {total / 3600:5.2f} h")
    if best:
        print(f"   fastest: k={best[1]} seeds per GPU, {best[0] / 3600:.2f} h "
              f"(on n GPUs of a Ray cluster, about 1/n of that: ray_resources={{'num_gpus': {1 / best[1]:g}}})")

    if not args.no_knobs:
        print(f"\n3. What each setting costs (one process, {steps} timed steps after warm-up):")
        if time.perf_counter() > deadline:
            print("  skipped, the time budget (--budget) is spent")
        else:
            bench_knobs(steps, device, min(n_train, 10_000), shape)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
