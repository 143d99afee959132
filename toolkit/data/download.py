"""Download public ratings data sets (GroupLens MovieLens) for `cli.py train --data ... --format ...`."""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import DataFormatError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteDataset:
    """A downloadable ratings archive and the file inside it that the loaders read."""

    url: str  # archive address
    member: str  # ratings file inside the archive
    format: str  # loader format of that file (see toolkit.data.interactions.FORMATS)


DATASETS = {
    "ml-100k": RemoteDataset("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "ml-100k/u.data", "ml-100k"),
    "ml-1m": RemoteDataset("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m/ratings.dat", "ml-1m"),
    "ml-latest-small": RemoteDataset("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
                                     "ml-latest-small/ratings.csv", "ml-latest"),
    "ml-25m": RemoteDataset("https://files.grouplens.org/datasets/movielens/ml-25m.zip", "ml-25m/ratings.csv",
                            "ml-latest"),
}


def download(name: str, out_dir: Path, timeout: float = 60.0) -> tuple[Path, str]:
    """Fetch and unpack a data set; returns (ratings file, its loader format). Needs network access."""
    if name not in DATASETS:
        raise DataFormatError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    out_dir = Path(out_dir)
    target = out_dir / spec.member
    if target.exists():
        return target, spec.format
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{name}.zip.partial"
    try:
        with urllib.request.urlopen(spec.url, timeout=timeout) as response, archive.open("wb") as handle:
            shutil.copyfileobj(response, handle)
    except OSError as err:
        archive.unlink(missing_ok=True)
        raise DataFormatError(f"could not download {spec.url}: {err}") from err
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    logger.info("downloaded %s (sha256 %s)", spec.url, digest)
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extract(spec.member, out_dir)
    except (zipfile.BadZipFile, KeyError) as err:
        raise DataFormatError(f"{spec.url} is not the expected archive ({err})") from err
    finally:
        archive.unlink(missing_ok=True)
    return target, spec.format
