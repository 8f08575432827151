"""Private helpers shared by several modules (numpy only; never imports torch)."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__: list[str] = []


def _disk_full(path: Path, err: OSError) -> OSError:
    """``err`` as the caller should see it: a full disk named as such, with the file."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "disk full" if err.errno == errno.ENOSPC else "disk quota exceeded"
        return OSError(err.errno, f"{what} while writing {path}: nothing was written there (no partial "
                                  "file left); free some space and run again", str(path))
    return err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    A crash or exception leaves any earlier file at ``path`` untouched and no
    partial file behind. The temporary file keeps ``path``'s suffix, so writers
    that append a suffix themselves (``np.savez``) are not surprised, and carries
    the writer's pid (``.NAME.pidN.XXXX``), so a killed writer's leftover can be
    told from a live one's. A full disk raises ``OSError(ENOSPC)`` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as err:
            full = _disk_full(path, err)
            if full is err:
                raise
            raise full from err
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_all(fh: Any, data: bytes) -> None:
    """Write ``data`` to the open binary file ``fh`` and flush it to the disk."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``). Returns the path.

    Readers see the old file or the new one, never a part; a failure (a full disk:
    ``OSError(ENOSPC)`` whose message names ``path`` and says "disk full") leaves no
    partial file.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            _write_all(fh, data)
    return path


def save_npz_atomic(path: str | os.PathLike, /, **arrays: Any) -> Path:
    """Write ``arrays`` to a compressed ``.npz`` atomically. Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load an ``.npz`` written by :func:`save_npz_atomic`, never unpickling."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path} is damaged or not an .npz file ({type(err).__name__}: {err}); "
                         "delete it and write it again") from err


def to_jsonable(obj: Any) -> Any:
    """Turn dataclasses, tuples, paths and numpy scalars into plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def config_key(config: Any, *, length: int = 16) -> str:
    """A stable hex key for a (dataclass) config: sha256 of its sorted JSON."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def as_float_array(x: Any, *, name: str, ndim: int | None = None) -> np.ndarray:
    """Validate a real-valued array: numeric, finite, of the given rank."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite values")
    return arr


def as_int_array(x: Any, *, name: str, ndim: int | None = None) -> np.ndarray:
    """Validate an integer array (labels, predictions); floats must be whole."""
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold whole numbers, got dtype {arr.dtype} with fractions or NaN")
        arr = arr.astype(np.int64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def pairwise_rate(preds: np.ndarray, *, agree: bool) -> np.ndarray:
    """(M, M) share of points on which two rows of validated ``preds`` (M, N) agree (or disagree).

    Symmetric; the diagonal is 1 for agreement and 0 for disagreement. A loop over models,
    each row vectorised over the later models and the points.
    """
    m = preds.shape[0]
    out = np.zeros((m, m))
    for i in range(m - 1):
        same = preds[i + 1:] == preds[i]
        out[i, i + 1:] = (same if agree else ~same).mean(axis=1)
    out = out + out.T
    if agree:
        np.fill_diagonal(out, 1.0)
    return out
