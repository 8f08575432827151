"""Train M models that differ only in their seed, with checkpoints, resume and a cache.

One :class:`TrainConfig` describes an ensemble: the data, the architecture, the
optimiser (SGD with momentum, the paper's defaults) and how the models differ
(the *randomness mode*). :func:`train_ensemble` trains the models that are not
yet on disk, one checkpoint per finished seed, and returns an :class:`Ensemble`.

Randomness modes (Jiang et al. 2022, GDE paper; model ``m`` has seed ``s = config.seed + m``)

============  =================  =================  ==========================================
mode          initialisation     data order         training data
============  =================  =================  ==========================================
diffinit      seed ``s``         ``config.seed``    the one subset of ``config.data``
difforder     ``config.seed``    seed ``s``         the one subset
diffdata      ``config.seed``    ``config.seed``    own subset: ``subset_seed + m``
alldiff       seed ``s``         seed ``s``         own subset: ``subset_seed + m``
============  =================  =================  ==========================================

In ``diffdata``/``alldiff`` every model draws its own stratified subset of
``n_train`` images from the full training split (model 0's is the subset of
``config.data``), all normalised with model 0's statistics; all models share the
test subset (``config.data.test_seed``).

Backends

``sequential``
    One seed after another in this process, single-threaded on CPU.
``processes``
    One single-thread worker process per seed (``spawn``), ``n_workers`` at a
    time (default: the usable CPU cores). Bit-identical to ``sequential``: both
    run the same code (:func:`train_seed`) with one thread and the same seeds. Each
    worker imports torch once (a few seconds), so this pays off for seeds that train
    longer than that; on CPU the workers stay for the next call of this process (a
    sweep of many small ensembles starts them once; ``backends.close_cpu_pool()``
    ends them, as exit does). As with any ``spawn`` pool, a *script* that uses it needs the
    ``if __name__ == "__main__":`` guard; notebooks need nothing. On CUDA
    (``device="cuda"``: every visible GPU; ``"cuda:i"``: GPU ``i`` only) each
    GPU gets ``seeds_per_gpu`` workers (default 1), so several seeds share one
    GPU where its memory allows (capped by ``n_workers`` when given).
``vmap``
    All missing seeds as one stacked model (``torch.func.stack_module_state`` +
    ``functional_call`` under ``vmap``), one optimiser step for all. The same
    algorithm as ``sequential`` (the same SGD step; SGD is elementwise, the summed loss
    gives every model its own gradient), but batched matmuls sum in another order, so the
    weights agree with ``sequential`` only to float tolerance (~1e-7 absolute
    after a few epochs of a small MLP), not bit for bit. Batch-norm running
    statistics are stacked buffers, updated per model. Meant for MLPs; conv
    nets work but are usually slower than ``processes`` on CPU. Checkpoints
    are written when the stacked run ends.
``ray``
    One Ray task per seed on a Ray cluster (:func:`run_ray`):
    an existing one (``ray_address``, or ``$RAY_ADDRESS``) or a private local one
    on 127.0.0.1. Each task runs :func:`train_seed`, as ``sequential`` does
    (bit-identical on CPU). ``ray_resources`` declares what each task needs,
    e.g. ``{"num_gpus": 0.25}`` for four seeds per GPU. On several machines the
    cache folder must be on storage every node shares (``IFT_CACHE`` on NFS).
    Needs ``pip install -e '.[ray]'``.
``auto``
    ``sequential`` on a GPU, ``vmap`` for an MLP on CPU, ``processes`` for conv
    nets when more than one core is usable, else ``sequential``.

On a GPU conv nets train in channels-last memory format (tensor cores); on the
CPU only ``small_cnn`` does (faster there), and the ResNets train in the standard
layout (oneDNN's channels-last kernels crash them on AVX2 CPUs; see
``ift_core.train.config._trains_channels_last``). On a GPU (``device="cuda"``, the
default when one is present) training uses bf16 autocast and keeps the data on the GPU;
results are then not bit-identical to CPU runs. ``backend="vmap", device="cuda"`` trains
several seeds at once on one GPU as a stacked model. Deterministic kernels are
requested everywhere (``torch.use_deterministic_algorithms(warn_only=True)``,
cuDNN deterministic, no benchmark mode). Recorded accuracies are computed in
float32 and the standard memory layout, as a loaded checkpoint computes them.

Caching: checkpoints live in ``entry_dir("ensembles", identity)`` where the
identity is the config without ``n_models`` (model ``m`` depends only on the
rest and on its seed), so a larger ensemble reuses the seeds a smaller one
trained. The device *type* is part of the key when it is not the CPU (bf16 GPU
runs differ from CPU runs and must not mix with them silently); the backend
and the exact device are recorded in each checkpoint but are not part of the
key. A sub-population (``DataConfig.subpopulation_per_class > 0``) is part of the
data description and so of the key; the sub-population fields are left out of the
key when it is 0, so the ordinary ensemble has one entry.

Checkpoints are sealed (:mod:`ift_core.integrity`): each records the sha256 of its
bytes and the identity it belongs to (the ensemble's key and the seed), checked
before it is used. A checkpoint that fails (damaged, truncated, another seed's)
is reported with its path and retrained by :func:`train_ensemble`, and refused
by :func:`load_ensemble`. The file is still ``torch.save`` output, so
``torch.load(path, weights_only=True)`` opens it too, unchecked.

Concurrent runs of one config (two notebooks, two terminals, a rerun while a
killed run's workers linger) share the work: each seed is claimed before it is
trained (:class:`ift_core.locks.Claims`, a lock file naming its owner), a run
trains the seeds nobody else holds and then waits for the others' checkpoints,
taking a seed over if its owner dies. ``processes`` workers die with the process
that started them.

One file per job; this face re-exports their public names (imported on first use, so that
configs and profiles need no torch):

================================  ==============================================================
``ift_core.train.config``         :class:`TrainConfig`, modes, schedules, profiles, seeds, the
                                  learning rate of a step, the cache identity (no torch)
``ift_core.train.seed``           one seed: :func:`train_seed`, its SGD step and its checkpoint
``ift_core.train.backends``       the backends, in a registry; :func:`run_ray`
``ift_core.train.ensemble``       :class:`Ensemble`, :func:`train_ensemble`, :func:`load_ensemble`
================================  ==============================================================

Examples
--------
>>> from ift_core import train
>>> ens = train.train_ensemble(train.get_profile("tiny", n_models=2, epochs=1), progress=False)
>>> ens.seeds
[0, 1]
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..internal import lazy_face

if TYPE_CHECKING:
    from .backends import BACKENDS, run_ray
    from .config import MODES, PROFILE_NAMES, PROFILES, SCHEDULES, TrainConfig, get_profile, lr_at, model_seeds
    from .ensemble import Ensemble, ensemble_dir, load_ensemble, train_ensemble
    from .seed import train_seed

# Each public name and the file it lives in.
_HOME = {
    "MODES": "config",
    "SCHEDULES": "config",
    "BACKENDS": "backends",
    "TrainConfig": "config",
    "PROFILES": "config",
    "PROFILE_NAMES": "config",
    "get_profile": "config",
    "Ensemble": "ensemble",
    "train_ensemble": "ensemble",
    "load_ensemble": "ensemble",
    "ensemble_dir": "ensemble",
    "model_seeds": "config",
    "lr_at": "config",
    "train_seed": "seed",
    "run_ray": "backends",
}

__all__ = list(_HOME)


__getattr__, __dir__ = lazy_face(__name__, _HOME, globals())
