"""Private helpers shared by several modules (numpy only; never imports torch)."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

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
    """Validate an integer array (labels, predictions); floats must be whole. Returns int64 or
    a narrower signed integer dtype; values that int64 cannot hold are refused, not wrapped."""
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}; pass class indices "
                         "(e.g. probs.argmax(-1))")
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        if arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} must hold integers below 2**63, got maximum {int(arr.max())} "
                             f"(dtype {arr.dtype})")
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold whole numbers, got dtype {arr.dtype} with fractions or NaN")
        if arr.size and np.abs(arr).max() >= 2.0**63:
            raise ValueError(f"{name} must hold integers below 2**63 in size, got {float(np.abs(arr).max()):.4g}")
        arr = arr.astype(np.int64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def vote_counts(preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Votes per point and class of validated ``preds`` (..., M, N) with classes in [0, n_classes).

    Returns int64 counts of shape (..., N, n_classes) in O(size): one bincount over flat
    (point, class) ids.
    """
    *lead, m, n = preds.shape
    size = math.prod(lead) * n
    point = np.arange(size, dtype=np.int64).reshape(*lead, 1, n)
    flat = (point * n_classes + preds).ravel()
    return np.bincount(flat, minlength=size * n_classes).reshape(*lead, n, n_classes)


def pair_agreement(counts: np.ndarray, n_models: int, *, include_self: bool = False,
                   agree: bool = True) -> np.ndarray:
    """Per-point share of model pairs that agree (or disagree), from vote counts (..., N, K).

    At a point where class k gets c_k of the M votes, ``sum_k c_k^2`` ordered pairs agree (the
    M self-pairs among them). Distinct pairs (``include_self=False``) divide by M(M - 1), pairs
    drawn with replacement by M^2. The counts are whole numbers, so every step is exact up to
    the final division.
    """
    m = n_models
    same = np.einsum("...k,...k->...", counts.astype(np.float64), counts.astype(np.float64))
    if agree:
        pairs = same if include_self else same - m
    else:
        pairs = m * m - same
    return pairs / (m * m if include_self else m * (m - 1))


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


# ------------------------------------------------------------------------------------------
# Scalar and array validators: one wording for every public function.
# Messages read "NAME must be WHAT, got VALUE; REMEDY". bool is never a number (True is not
# a count), numpy scalars are accepted like Python ones, strings are never parsed.
# ------------------------------------------------------------------------------------------
def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(name: str, what: str, value: Any, remedy: str | None) -> ValueError:
    return ValueError(f"{name} must be {what}, got {_show(value)}" + (f"; {remedy}" if remedy else ""))


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _bounds(minimum: float | None, maximum: float | None, *, open_low: bool = False,
            open_high: bool = False) -> str:
    low = None if minimum is None else ("> " if open_low else ">= ") + f"{minimum:g}"
    high = None if maximum is None else ("< " if open_high else "<= ") + f"{maximum:g}"
    return " and ".join(b for b in (low, high) if b)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              remedy: str | None = None) -> int:
    """``value`` as a Python int: an int or numpy integer (never a bool, float or string) in range.

    Examples
    --------
    >>> check_int(np.int32(3), "n_models", minimum=1)
    3
    >>> check_int(True, "n_models")
    Traceback (most recent call last):
    ...
    ValueError: n_models must be an integer, got True
    """
    what = "an integer" + (f" {_bounds(minimum, maximum)}" if minimum is not None or maximum is not None else "")
    if _is_bool(value) or not isinstance(value, (int, np.integer)):
        raise _fail(name, what, value, remedy)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(name, what, value, remedy)
    return value


def check_real(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
               open_low: bool = False, open_high: bool = False, allow_inf: bool = False,
               remedy: str | None = None) -> float:
    """``value`` as a finite float (``inf`` only where allowed) in range; never a bool, complex or string.

    Examples
    --------
    >>> check_real(np.float32(0.5), "level", minimum=0, maximum=1, open_low=True, open_high=True)
    0.5
    >>> check_real("high", "level")
    Traceback (most recent call last):
    ...
    ValueError: level must be a finite real number, got 'high'
    """
    rng = _bounds(minimum, maximum, open_low=open_low, open_high=open_high)
    what = ("a real number" if allow_inf else "a finite real number") + (f" {rng}" if rng else "")
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(name, what, value, remedy)
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise _fail(name, what, value, remedy)
    if minimum is not None and (v < minimum or (open_low and v == minimum)):
        raise _fail(name, what, value, remedy)
    if maximum is not None and (v > maximum or (open_high and v == maximum)):
        raise _fail(name, what, value, remedy)
    return v


#: Counts enter float arithmetic: above 2**53 they are no longer exact.
MAX_EXACT_COUNT = 2**53


def check_count(value: Any, name: str, *, minimum: int = 1, allow_inf: bool = False,
                remedy: str | None = None) -> int | float:
    """``value`` as an int: a whole number (an int, or a float without a fraction such as 5.0) in
    ``[minimum, 2**53]`` (exact in floating point); ``math.inf`` only where ``allow_inf``.

    Examples
    --------
    >>> check_count(5.0, "n_train")
    5
    >>> check_count(math.inf, "n_train", allow_inf=True)
    inf
    >>> check_count(2.5, "n_train")
    Traceback (most recent call last):
    ...
    ValueError: n_train must be a whole number >= 1, got 2.5
    """
    what = f"a whole number >= {minimum}" + (" (or math.inf)" if allow_inf else "")
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(name, what, value, remedy)
    if allow_inf and value == math.inf:
        return math.inf
    if not isinstance(value, (int, np.integer)) and (not math.isfinite(value) or value != int(value)):
        raise _fail(name, what, value, remedy)
    if value < minimum:
        raise _fail(name, what, value, remedy)
    if value > MAX_EXACT_COUNT:
        raise _fail(name, "at most 2**53 (exact in floating point)", value,
                    remedy or ("use math.inf for the limit of infinitely many" if allow_inf else None))
    return int(value)


def check_probability(value: Any, name: str, *, remedy: str | None = None) -> float:
    """``value`` as a float in [0, 1] (a probability, a share or a quantile level).

    Examples
    --------
    >>> check_probability(np.float32(0.25), "p_d")
    0.25
    >>> check_probability(1.5, "p_d")
    Traceback (most recent call last):
    ...
    ValueError: p_d must be a probability in [0, 1], got 1.5
    """
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(name, "a probability in [0, 1]", value, remedy)
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise _fail(name, "a probability in [0, 1]", value, remedy)
    return v


def check_bool(value: Any, name: str, *, remedy: str | None = None) -> bool:
    """``value`` as a bool: True/False or a numpy bool only (never 0/1, "False" or None).

    Examples
    --------
    >>> check_bool(np.True_, "cache")
    True
    >>> check_bool("False", "cache")
    Traceback (most recent call last):
    ...
    ValueError: cache must be True or False, got 'False'
    """
    if not _is_bool(value):
        raise _fail(name, "True or False", value, remedy)
    return bool(value)


def check_choice(value: Any, name: str, choices: Any, *, remedy: str | None = None) -> Any:
    """The choice ``value`` names (compared by kind and value: 1 is not True, nor "1";
    numpy strings count as strings).

    Examples
    --------
    >>> check_choice(np.str_("both"), "method", ("both", "bootstrap"))
    'both'
    """
    choices = tuple(choices)

    def same(c: Any) -> bool:
        kin = isinstance(value, type(c)) or isinstance(c, type(value))
        return kin and _is_bool(value) == _is_bool(c) and bool(value == c)

    for c in choices:
        if same(c):
            return c
    raise _fail(name, f"one of {choices}", value, remedy)


def check_labels(labels: Any, name: str, *, n: int | None = None, n_classes: int | None = None,
                 remedy: str | None = None) -> np.ndarray:
    """A non-empty 1-D int64 array of class indices in ``[0, n_classes)`` (of length ``n`` if given).

    Examples
    --------
    >>> check_labels([0, 2, 1], "labels", n_classes=3)
    array([0, 2, 1])
    >>> check_labels([0, -1], "labels", n_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: labels must lie in [0, 3) (class indices), got minimum -1
    """
    arr = as_int_array(labels, name=name, ndim=1)
    if arr.size == 0:
        raise _fail(name, "a non-empty array of class indices", arr, remedy)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries (one per point), got {arr.shape[0]}"
                         + (f"; {remedy}" if remedy else ""))
    top = "n_classes" if n_classes is None else f"{n_classes}"
    if arr.min() < 0:
        raise ValueError(f"{name} must lie in [0, {top}) (class indices), got minimum {int(arr.min())}"
                         + (f"; {remedy}" if remedy else ""))
    if n_classes is not None and arr.max() >= n_classes:
        raise ValueError(f"{name} must lie in [0, {n_classes}) (class indices), got maximum {int(arr.max())}"
                         + (f"; {remedy}" if remedy else ""))
    return arr


def _total_memory() -> int | None:
    """Physical memory in bytes, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def check_memory(n_bytes: float, what: str, *, remedy: str | None = None) -> None:
    """Refuse, before allocating, work whose arrays (``n_bytes``, computed from the arguments)
    exceed this machine's physical memory; ``what`` names the arguments that set the size.

    Examples
    --------
    >>> check_memory(8 * 10**6, "n_boot=10**6 replicates")
    >>> check_memory(8 * 10**18, "n_boot=10**18 replicates", remedy="lower n_boot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: n_boot=10**18 replicates needs 7,450,580,596.9 GiB, more than this machine's ...
    """
    total = _total_memory()
    if total is not None and n_bytes > total:
        raise ValueError(f"{what} needs {_gib(n_bytes)}, more than this machine's {_gib(total)} of memory"
                         + (f"; {remedy}" if remedy else ""))


def lazy_face(package: str, homes: Mapping[str, str], namespace: dict[str, Any]
              ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package face that loads each public name on first use.

    ``homes`` maps every public name to the file (a submodule of ``package``) it lives in. A name
    is imported from its file the first time it is asked for, then kept in ``namespace`` (the
    face's ``globals()``) as an ordinary attribute, so importing the face itself imports no file.

    Examples
    --------
    >>> getattr_, dir_ = lazy_face("json", {"JSONDecoder": "decoder"}, {})
    >>> getattr_("JSONDecoder").__name__
    'JSONDecoder'
    >>> "JSONDecoder" in dir_()
    True
    """
    import importlib

    def __getattr__(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
