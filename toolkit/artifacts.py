"""Files as the toolkit writes and reads them: atomic JSON writes, work directories that a killed process leaves
to the next one, bounded strict reads of small files (configs, manifests, keys), sha256 of a file, and a
deterministic zip of a directory (.mlpackage)."""

from __future__ import annotations

import errno
import glob
import hashlib
import io
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps make the zip, and its sha256, reproducible
PARTIAL = ".partial-"  # .NAME.partial-PID-XXXX: a work directory beside its destination NAME, named by its pid


def write_json(path: Path, obj) -> Path:
    """Write JSON beside `path`, then rename it into place: a failed write leaves the previous file intact."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(obj, indent=2))
    partial.replace(path)
    return path


def work_dir_beside(dest: Path) -> Path:
    """A new, empty work directory beside `dest` (.NAME.partial-PID-XXXX, mode 0755) to build `dest` in and rename
    into place once complete; the work directories of earlier processes for `dest` that are gone (killed midway)
    are removed first. OSError when `dest`'s folder cannot be written."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}{PARTIAL}"
    for work in dest.parent.glob(glob.escape(prefix) + "*"):
        owner = work.name[len(prefix):].split("-", 1)[0]
        if not owner.isdigit() or not _alive(int(owner)):  # no pid: made before work directories named theirs
            shutil.rmtree(work, ignore_errors=True)
            logger.warning("removed %s, left by a process that did not finish", work)
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=dest.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the service may run as another user
    return work


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


MAX_SMALL_FILE = 64 << 20  # a config, manifest, keys or results file read whole: far beyond any real one


def read_small_file(path: Path, limit: int = MAX_SMALL_FILE) -> bytes:
    """A file's bytes, read whole; OSError (which its callers already turn into their own one-line errors) when it
    is not a regular file (a directory, /dev/zero, a pipe) or holds more than `limit` bytes."""
    with Path(path).open("rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data


def strict_json(text: str | bytes) -> Any:
    """json.loads that also refuses what JSON does not allow but Python's reader takes: NaN, Infinity and numbers
    that overflow to infinity (ValueError; json.JSONDecodeError is one)."""
    return json.loads(text, parse_float=_finite, parse_constant=_not_a_number)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def zip_directory(directory: Path) -> bytes:
    """The directory as a zip with sorted entries and fixed timestamps: same tree, same bytes."""
    directory = Path(directory)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            name = f"{directory.name}/{path.relative_to(directory).as_posix()}"
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def served_bytes(path: Path) -> bytes:
    """What the service sends for an artifact: the file itself, or a directory as a deterministic zip."""
    path = Path(path)
    return zip_directory(path) if path.is_dir() else path.read_bytes()


def served_digest(path: Path) -> tuple[int, str]:
    """(size, sha256) of an artifact as served."""
    path = Path(path)
    if path.is_dir():
        data = zip_directory(path)
        return len(data), hashlib.sha256(data).hexdigest()
    return path.stat().st_size, sha256_file(path)
