"""CPU training on oneDNN's AVX2 code path, in a subprocess, so that a native crash is a failing test.

CI machines and laptops may have AVX2 but no AVX-512; oneDNN picks its kernels by ISA at run
time, so a kernel bug of the AVX2 path (issue 12: heap corruption in channels-last strided 1x1
convolutions) never shows on the AVX-512 machine the code was written on. Here every
architecture, at the narrow widths where oneDNN's kernels change and at its default width,
takes a couple of SGD steps on every CPU backend with oneDNN capped at AVX2. The child process
reports each run before starting it, so a crash names the run that crashed.

``ray`` is left out: its tasks run the same per-seed function as ``sequential``, in worker
processes as ``processes`` does, and starting a Ray cluster would take longer than this test.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import math
    import torch
    from ift_core.data import DataConfig
    from ift_core.models import ARCHITECTURES, DEFAULT_WIDTHS
    from ift_core.train import TrainConfig, train_ensemble

    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):  # prints the ISA in use
        torch.nn.Conv2d(3, 4, 3)(torch.zeros(2, 3, 8, 8))
    # 20 digit images (2 per class), batches of 10: two SGD steps per seed
    data = DataConfig(name="digits", n_train=20, n_test=10)
    for arch in ARCHITECTURES:
        for width in sorted({1, 4, DEFAULT_WIDTHS[arch]}):
            config = TrainConfig(data=data, arch=arch, width=width, n_models=2, epochs=1, batch_size=10,
                                 lr=0.01)
            # processes: a worker runs sequential's code; each pool start imports torch (seconds),
            # so one narrow width per architecture (4: the ResNets' crash of issue 12)
            for backend in ("sequential", "vmap") + (("processes",) if width == 4 else ()):
                print(f"RUN {arch} width={width} backend={backend}", flush=True)
                ens = train_ensemble(config, backend=backend, n_workers=1, cache=False, progress=False)
                losses = [h for m in ens.metrics() for h in m["loss_history"]]
                assert len(ens) == 2 and all(map(math.isfinite, losses)), (arch, width, backend, losses)
    print("ALL DONE", flush=True)
""")


def _run_avx2(tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", DNNL_MAX_CPU_ISA="AVX2", IFT_CACHE=str(tmp_path),
               OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)


def _report(proc: subprocess.CompletedProcess) -> str:
    runs = [ln for ln in proc.stdout.splitlines() if ln.startswith("RUN ")]
    # faulthandler's report (signal, Python traceback), without its list of extension modules
    err = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.startswith("Extension modules:"))
    start = err.find("Fatal Python error")
    return (f"training under ONEDNN_MAX_CPU_ISA=AVX2 exited with {proc.returncode} "
            f"(negative: killed by that signal) during [{runs[-1][4:] if runs else 'start-up'}]\n"
            f"--- stderr ---\n{err[start:][:3000] if start >= 0 else err[-3000:]}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-800:]}")


def test_every_architecture_trains_on_every_cpu_backend_under_avx2(tmp_path):
    proc = _run_avx2(tmp_path)
    assert proc.returncode == 0 and "ALL DONE" in proc.stdout, _report(proc)
    assert "isa:Intel AVX2" in proc.stdout, "oneDNN ignored ONEDNN_MAX_CPU_ISA=AVX2:\n" + proc.stdout[:2000]
    runs = [ln for ln in proc.stdout.splitlines() if ln.startswith("RUN ")]
    # 4 architectures x widths {1, 4, default} x (sequential, vmap), and processes at width 4
    assert len(runs) == 4 * 3 * 2 + 4
