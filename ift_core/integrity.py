"""Sealed files: content hash and identity, checked before a cached file is used.

A checkpoint or cache file is the writer's bytes (``torch.save`` or ``np.savez``
output) followed by a *seal*::

    payload | identity (compact JSON) | len (8 bytes, little-endian) | b"IFTSEAL1" | sha256 (32 bytes)

The sha256 covers everything before it, so any change to the file (one flipped
byte anywhere, a truncation, an empty or foreign file) fails the check, and the
identity (what the file belongs to: a config key and a seed, say) catches a
right file in the wrong place (``seed_00000.pt`` copied to ``seed_00001.pt``).
The payload keeps its format: zip readers (``torch.load``, ``np.load``) find
their archive from the end and ignore the trailing seal, so a sealed file still
opens with the usual tools. :func:`read_sealed` checks everything *before* the
payload reaches any reader, and says what is wrong with which file.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
>>> _ = write_sealed(path, b"payload", {"kind": "demo", "seed": 3})
>>> read_sealed(path, {"kind": "demo", "seed": 3})
b'payload'
>>> read_sealed(path, {"kind": "demo", "seed": 4})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ift_core.integrity.DamagedFileError: .../x.bin: belongs to {"kind":"demo","seed":3}, expected {"kind":"demo","seed":4}
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

from .internal import to_jsonable, write_bytes_atomic

__all__ = ["DamagedFileError", "seal", "unseal", "write_sealed", "read_sealed"]

MAGIC = b"IFTSEAL1"
_DIGEST = 32
_TAIL = 8 + len(MAGIC) + _DIGEST  # length field, magic, digest


class DamagedFileError(ValueError):
    """A file that fails its seal: damaged, truncated, foreign, or another item's.

    Attributes
    ----------
    path : pathlib.Path
    reason : str
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def _identity_json(identity: Mapping[str, Any]) -> bytes:
    if not isinstance(identity, Mapping):
        raise ValueError(f"identity must be a mapping, got {type(identity).__name__}")
    return json.dumps(to_jsonable(dict(identity)), sort_keys=True, separators=(",", ":")).encode()


def seal(payload: bytes, identity: Mapping[str, Any]) -> bytes:
    """``payload`` followed by its seal (identity, its length, the magic, the sha256 of all before)."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload must be bytes, got {type(payload).__name__}")
    ident = _identity_json(identity)
    body = b"".join([bytes(payload), ident, struct.pack("<Q", len(ident)), MAGIC])
    return body + hashlib.sha256(body).digest()


def unseal(data: bytes, identity: Mapping[str, Any], *, path: str | os.PathLike = "<bytes>") -> bytes:
    """The payload of sealed ``data`` after checking its hash and that it belongs to ``identity``.

    Raises
    ------
    DamagedFileError
        Too short, no seal, a hash mismatch, or another identity; the message names ``path``.
    """
    n = len(data)
    if n < _TAIL:
        return _fail(path, f"{'empty' if n == 0 else f'only {n} bytes'}: truncated or never written")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if body[-len(MAGIC):] != MAGIC:
        return _fail(path, "no ift seal at its end: damaged, truncated, or not written by this version "
                           "of ift_core")
    if hashlib.sha256(body).digest() != digest:
        return _fail(path, "content hash mismatch: the file was damaged or truncated after it was written")
    (size,) = struct.unpack("<Q", body[-len(MAGIC) - 8:-len(MAGIC)])
    start = len(body) - len(MAGIC) - 8 - size
    if start < 0:
        return _fail(path, "malformed seal")
    found = body[start:start + size]
    want = _identity_json(identity)
    if found != want:
        return _fail(path, f"belongs to {found.decode(errors='replace')}, expected {want.decode()}")
    return body[:start]


def _fail(path: str | os.PathLike, reason: str) -> bytes:
    raise DamagedFileError(path, reason)


def write_sealed(path: str | os.PathLike, payload: bytes, identity: Mapping[str, Any]) -> Path:
    """Write ``payload`` sealed with ``identity`` to ``path`` atomically. Returns the path.

    A full disk raises ``OSError(ENOSPC)`` naming ``path`` and leaves no partial file.
    """
    return write_bytes_atomic(path, seal(payload, identity))


def read_sealed(path: str | os.PathLike, identity: Mapping[str, Any]) -> bytes:
    """The payload of the sealed file ``path``, checked against its hash and ``identity``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    DamagedFileError
        The file cannot be read, fails its hash, or belongs to another identity.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise DamagedFileError(path, f"cannot be read ({err})") from err
    return unseal(data, identity, path=path)
