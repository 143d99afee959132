"""Artifact files as they are served: sha256 of a file, and a deterministic zip of a directory (.mlpackage)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps make the zip, and its sha256, reproducible


def write_json(path: Path, obj) -> Path:
    """Write JSON beside `path`, then rename it into place: a failed write leaves the previous file intact."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(obj, indent=2))
    partial.replace(path)
    return path


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
