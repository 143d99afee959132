"""The ratings-file layouts the loaders read (the CLI's --format choices), listed without importing pandas."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileFormat:
    """How one kind of ratings file is laid out."""

    description: str  # shown in --help
    separator: str  # field separator as it appears in the file
    has_header: bool  # whether the first line names the columns
    n_fields: int  # fields per line; user, item, rating, timestamp come first in that order


FORMATS: dict[str, FileFormat] = {
    "ml-100k": FileFormat("MovieLens 100K u.data (tab separated, no header)", "\t", False, 4),
    "ml-1m": FileFormat("MovieLens 1M ratings.dat (user::item::rating::timestamp)", "::", False, 4),
    "ml-latest": FileFormat("MovieLens latest/25M ratings.csv (with header)", ",", True, 4),
    "amazon": FileFormat("Amazon ratings CSV user,item,rating,timestamp (no header)", ",", False, 4),
}
