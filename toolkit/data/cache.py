"""Where preprocessed data is cached, defined once: an explicit directory, else $DUET_CACHE_DIR, else the
platform's user cache directory (never relative to the current directory)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "DUET_CACHE_DIR"


def user_cache_root() -> Path:
    """The platform's per-user cache directory: ~/Library/Caches, %LOCALAPPDATA%, or $XDG_CACHE_HOME (~/.cache)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_dir(explicit: str | Path | None = None) -> Path:
    """The cache directory to use, as an absolute path."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    return (user_cache_root() / "duet").resolve()
