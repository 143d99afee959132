"""Artifacts as the service sends them: held in memory, checked against the manifest, with ETag and byte ranges."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response

from toolkit.errors import ManifestError
from toolkit.service.responses import ApiError, etag_matches

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ServedArtifact:
    """One target's file as served (an .mlpackage directory as its deterministic zip)."""

    target: str  # manifest key, e.g. "executorch"
    filename: str  # name offered to the client, e.g. "model.pte" or "model.mlpackage.zip"
    data: bytes  # the served bytes
    sha256: str  # hex digest of `data`, equal to the manifest's

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


def load_artifacts(exports_dir: Path, manifest: Mapping[str, Any]) -> dict[str, ServedArtifact]:
    """Every target of the manifest, read and checked; a missing file or a wrong size or digest is a ManifestError."""
    from toolkit.artifacts import served_bytes

    artifacts = {}
    for target, info in manifest["targets"].items():
        path = Path(exports_dir) / info["file"]
        if not path.exists():
            raise ManifestError(f"{exports_dir}: the manifest lists {info['file']} for {target}, but it is missing")
        if not (path.is_file() or path.is_dir()):  # a FIFO or a device would block or never end
            raise ManifestError(f"{path}: not a regular file or directory")
        try:
            data = served_bytes(path)
        except OSError as err:
            raise ManifestError(f"{path}: cannot read it ({err.strerror or err})") from err
        digest = hashlib.sha256(data).hexdigest()
        if digest != info["sha256"] or len(data) != info["bytes"]:
            raise ManifestError(f"{path}: served as {len(data)} bytes with sha256 {digest}, but the manifest says "
                                f"{info['bytes']} bytes with sha256 {info['sha256']} (re-export?)")
        filename = info["file"] + (".zip" if path.is_dir() else "")
        artifacts[target] = ServedArtifact(target, filename, data, digest)
    return artifacts


MAX_POSITION = 10 ** 18  # beyond any artifact; longer digit strings would trip Python's int-parsing limit


def _position(digits: str) -> int:
    """A byte position of a Range header, any number of digits; positions past MAX_POSITION read as it."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else MAX_POSITION


class RangeNotSatisfiable(ValueError):
    """A Range header that selects no byte of the artifact (answered 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single 'bytes=a-b' range, None for the whole file.

    Ranges this service does not serve (several ranges, other units, malformed) also give None: the whole
    file is sent with 200, as RFC 9110 allows. A well-formed range beyond the end raises RangeNotSatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        length = _position(last)
        if length == 0:
            raise RangeNotSatisfiable("a suffix range of 0 bytes selects nothing")
        return max(0, size - length), size
    start = _position(first)
    end = size if not last else min(size, _position(last) + 1)
    if last and _position(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(f"range starts at byte {start}; the artifact has {size} bytes")
    return start, end


def artifact_response(request: Request, artifact: ServedArtifact, model_version: str) -> Response:
    """The artifact, whole (200), a byte range of it (206; 416 outside it) or 304 when If-None-Match names it.
    A Range whose If-Range names another version gets the whole file."""
    size = len(artifact.data)
    headers = {"ETag": artifact.etag, "X-Artifact-SHA256": artifact.sha256, "Accept-Ranges": "bytes",
               "X-Model-Version": model_version, "Content-Disposition": f'attachment; filename="{artifact.filename}"'}
    if etag_matches(request.headers.get("if-none-match"), artifact.etag):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != artifact.etag:
        wanted = None  # the client's partial copy is of another version: send it all
    try:
        span = parse_range(wanted, size)
    except RangeNotSatisfiable as err:
        raise ApiError(416, "range_not_satisfiable", str(err), {"Content-Range": f"bytes */{size}"}) from None
    if span is None:
        return Response(artifact.data, headers=headers, media_type="application/octet-stream")
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(artifact.data[start:end], 206, headers=headers, media_type="application/octet-stream")
