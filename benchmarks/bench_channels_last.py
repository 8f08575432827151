"""Channels-last against the standard (NCHW) memory format for CPU training, per ISA.

Why: channels-last is a GPU (tensor-core) optimisation. On CPU, oneDNN's channels-last
kernels corrupt the heap for the ResNets' narrow strided 1x1 convolutions on its AVX2 code
path (any AVX2-only x86 CPU), so ``ift_core.train`` uses it on the CPU only for ``small_cnn``, where it is
faster and never crashed. This benchmark is the measurement behind that choice: for each conv
architecture at a narrow and at its default width, the wall time of
SGD steps (batch 100, one thread, as ``ift_core.train.train_seed`` trains) in both formats, under the CPU's
native oneDNN ISA and under ``ONEDNN_MAX_CPU_ISA=AVX2`` (what an AVX2-only CPU runs).

Every cell runs in its own subprocess (oneDNN reads the ISA variable once, and a crash must
be recorded, not kill the benchmark); both formats of a row are timed in the same
subprocess, one after the other, so their ratio compares like with like.

    .venv/bin/python benchmarks/bench_channels_last.py [--steps 10] [--isa native AVX2]

Columns: ``in`` input channels; ``nchw`` and ``cl`` milliseconds per step; ``nchw/cl`` > 1
means channels-last is faster; ``crash`` means the channels-last subprocess died (signal in
brackets); ``nchw gap`` and ``cl gap`` are the largest relative error, over the parameters,
of that format's first-step gradient against a float64 reference (same weights, same batch):
~1e-6 is float32 rounding; bias and batch-norm gradients sum ~10^4 terms that nearly cancel,
where a float32 reduction may reach ~1e-2 (in either format, depending on the kernel).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap

# (arch, width, channels, image side): the profiles' data shapes (Fashion-MNIST 1x28x28 for
# the CPU profile's small nets, CIFAR-10 3x32x32 for ResNet18), each at a narrow width and
# at the default.
CELLS = [
    ("small_cnn", 4, 1, 28), ("small_cnn", 6, 3, 28), ("small_cnn", 16, 1, 28),
    ("small_resnet", 4, 1, 28), ("small_resnet", 16, 1, 28),
    ("resnet18", 4, 3, 32), ("resnet18", 64, 3, 32),
]

_CHILD = textwrap.dedent("""
    import json, sys, time
    import torch
    import torch.nn.functional as F
    from ift_core.models import build_model

    arch, width, c, side, steps, fmts = json.loads(sys.argv[1])
    torch.set_num_threads(1)

    def fresh():
        torch.manual_seed(0)  # the same weights and batch for every format
        model = build_model(arch, in_channels=c, n_classes=10, image_size=side, width=width)
        return model, torch.randn(100, c, side, side), torch.randint(0, 10, (100,))

    # reference gradients: float64, torch's own kernels (oneDNN off)
    torch.backends.mkldnn.enabled = False
    model, x, y = fresh()
    F.cross_entropy(model.double()(x.double()), y).backward()
    ref = [p.grad.clone() for p in model.parameters()]
    torch.backends.mkldnn.enabled = True
    out = {}
    for fmt in fmts:
        model, x, y = fresh()
        if fmt == "cl":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        step()  # warm-up (oneDNN primitive creation), whose gradients are compared with the reference
        out[fmt + "_gap"] = max(float((p.grad.double() - r).norm() / r.norm().clamp_min(1e-300))
                                for p, r in zip(model.parameters(), ref))
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out[fmt] = (time.perf_counter() - t0) / steps
        print(json.dumps(out), flush=True)  # what finished so far survives a crash
""")


def _run(cell: tuple, steps: int, isa: str) -> dict:
    env = dict(os.environ)
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        env.pop(var, None)
        if isa != "native":
            env[var] = isa
    arch, width, c, side = cell
    # NCHW first: a channels-last crash then still leaves the NCHW time behind
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([arch, width, c, side, steps, ["nchw", "cl"]])],
                          env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0:
        sig = -proc.returncode
        result["crash"] = signal.Signals(sig).name if 0 < sig < 65 else f"exit {proc.returncode}"
    return result


def _load() -> str:
    try:
        return "load average " + " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "load average unavailable"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed SGD steps per format (after one warm-up)")
    p.add_argument("--isa", nargs="+", default=["native", "AVX2"], help="oneDNN ISA caps to compare")
    args = p.parse_args()
    import torch

    print(f"torch {torch.__version__}; batch 100, one thread, {args.steps} timed steps; {_load()}")
    print(f"{'isa':7s} {'arch':13s} {'width':>5s} {'in':>3s} {'nchw ms':>9s} {'cl ms':>9s} {'nchw/cl':>8s} "
          f"{'nchw gap':>9s} {'cl gap':>9s}")
    for isa in args.isa:
        for cell in CELLS:
            r = _run(cell, args.steps, isa)
            nchw = f"{1e3 * r['nchw']:9.1f}" if "nchw" in r else f"{'crash':>9s}"
            if "cl" in r:
                cl, ratio = f"{1e3 * r['cl']:9.1f}", f"{r['nchw'] / r['cl']:7.2f}x"
            else:
                cl, ratio = f"{'crash':>9s}", f"[{r.get('crash', '?')}]"
            gaps = " ".join(f"{r[k]:9.1e}" if k in r else f"{'-':>9s}" for k in ("nchw_gap", "cl_gap"))
            print(f"{isa:7s} {cell[0]:13s} {cell[1]:5d} {cell[2]:3d} {nchw} {cl} {ratio:>8s} {gaps}", flush=True)
    print(_load())


if __name__ == "__main__":
    main()
