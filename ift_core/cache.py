"""Where results live: one folder per config, keyed by the config's hash.

The cache root is ``$IFT_CACHE`` when set, else ``<repo>/.cache/ift`` when run
from a checkout, else ``~/.cache/ift``. Every entry folder holds a
``config.json`` describing what produced it, so a cache is browsable by hand.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .internal import atomic_path, config_key, to_jsonable

__all__ = ["cache_root", "entry_dir", "config_key"]


def cache_root() -> Path:
    """The folder under which every cached result lives."""
    env = os.environ.get("IFT_CACHE")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / ".cache" / "ift"
    return Path.home() / ".cache" / "ift"


def entry_dir(kind: str, config: Any, *, root: str | os.PathLike | None = None) -> Path:
    """The folder for ``config`` under ``kind`` (e.g. ``"ensembles"``), created on demand.

    Writes ``config.json`` beside the results the first time.
    """
    base = Path(root) if root is not None else cache_root()
    folder = base / kind / config_key(config)
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "config.json"
    if not meta.exists():
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps(to_jsonable(config), indent=2, sort_keys=True))
    return folder
