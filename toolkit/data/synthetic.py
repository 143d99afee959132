"""A seeded synthetic ratings.csv shaped like MovieLens-25M: `python -m toolkit.data.synthetic --rows N --out FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.errors import ConfigError

logger = logging.getLogger(__name__)

HEADER = "userId,movieId,rating,timestamp\n"  # the column layout of MovieLens' ratings.csv (format ml-latest)
ML25M_ROWS, ML25M_USERS, ML25M_ITEMS = 25_000_095, 162_541, 59_047  # MovieLens-25M's ratings, users, rated movies
ML25M_MAX_MOVIE_ID = 209_171  # its movie ids are sparse in 1..209171
MIN_PER_USER = 20  # MovieLens keeps users with at least 20 ratings
FIRST_TIME, LAST_TIME = 789_652_009, 1_574_327_703  # 1995-01-09 .. 2019-11-21, the span of ML-25M's timestamps
RATINGS = np.array(["0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"])
RATING_SHARES = np.array([1.6, 3.1, 1.6, 6.6, 5.0, 19.6, 12.6, 26.6, 8.5, 14.4])  # ML-25M's star histogram, in %
ZIPF_EXPONENT, ZIPF_OFFSET = 2.2, 400  # item popularity ∝ (rank + offset)^-exponent: ML-25M's top and median movie
EXTRA_MEDIAN, EXTRA_SIGMA = 51.0, 1.39  # ratings beyond the 20th per user: lognormal, median 71 and mean 154 in all
CHUNK_ROWS = 1_000_000  # users are generated and written in groups of about this many ratings
HEAVY_USER = 500  # users with more ratings than this draw their distinct items by exponential keys over all items


@dataclass(frozen=True)
class SyntheticSummary:
    """What was written."""

    path: Path  # the ratings file
    rows: int  # ratings (lines after the header)
    users: int  # distinct userId values (1..users)
    items: int  # distinct movieId values that occur in the file


def write_ratings(path: str | Path, rows: int, seed: int = 0, n_items: int = ML25M_ITEMS) -> SyntheticSummary:
    """Write `rows` ratings in MovieLens' ratings.csv layout, sorted by userId then movieId like the real file.

    Users number rows * 162541 / 25000095 (ML-25M's ratio), each with at least 20 ratings and a heavy-tailed
    count; items are drawn without repetition per user from a Zipf-like popularity over `n_items` movies with
    sparse ids; each user rates within an active period somewhere in 1995..2019. Same arguments, same bytes.
    """
    path = Path(path)
    if rows < MIN_PER_USER:
        raise ConfigError(f"rows must be at least {MIN_PER_USER} (one user's ratings), got {rows}")
    if not MIN_PER_USER <= n_items <= ML25M_MAX_MOVIE_ID:
        raise ConfigError(f"the item count must be within {MIN_PER_USER}..{ML25M_MAX_MOVIE_ID}, got {n_items}")
    rng = np.random.default_rng([seed, 0])
    counts = _user_counts(rows, n_items, rng)
    movie_ids = rng.permutation(np.sort(rng.choice(ML25M_MAX_MOVIE_ID, n_items, replace=False) + 1))  # by rank
    popularity = (np.arange(1, n_items + 1) + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    popularity /= popularity.sum()
    cdf = np.cumsum(popularity)
    seen = np.zeros(n_items, bool)
    bounds = _chunk_bounds(counts)
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="ascii", newline="\n") as out:
        out.write(HEADER)
        for chunk, (first, last) in enumerate(zip(bounds[:-1], bounds[1:])):
            chunk_rng = np.random.default_rng([seed, 1, chunk])
            users, ranks = _chunk_items(counts[first:last], popularity, cdf, chunk_rng)
            seen[ranks] = True
            out.write(_chunk_text(users + first + 1, movie_ids[ranks], counts[first:last], chunk_rng))
            logger.info("users %d..%d written", first + 1, last)
    partial.replace(path)
    return SyntheticSummary(path, int(counts.sum()), len(counts), int(seen.sum()))


def _user_counts(rows: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user, each in 20..n_items, summing to `rows`: 20 plus a lognormal share of the rest."""
    n_users = min(max(1, round(rows * ML25M_USERS / ML25M_ROWS)), rows // MIN_PER_USER)
    if rows > n_users * n_items:
        raise ConfigError(f"{rows} ratings do not fit {n_users} users rating {n_items} movies at most once each")
    weights = rng.lognormal(np.log(EXTRA_MEDIAN), EXTRA_SIGMA, n_users)
    extra_total = rows - MIN_PER_USER * n_users
    share = weights / weights.sum() * extra_total
    extra = np.floor(share).astype(np.int64)
    remainder = extra_total - int(extra.sum())
    extra[np.argsort(extra - share, kind="stable")[:remainder]] += 1  # largest remainders round up
    counts = MIN_PER_USER + extra
    while (over := np.clip(counts - n_items, 0, None)).any():  # a user cannot rate more movies than exist
        counts -= over
        room = np.flatnonzero(counts < n_items)
        np.add.at(counts, room[np.arange(int(over.sum())) % len(room)], 1)
    return counts


def _chunk_bounds(counts: np.ndarray) -> np.ndarray:
    """User indices that cut the users into groups of about CHUNK_ROWS ratings."""
    ends = np.cumsum(counts)
    cuts = np.searchsorted(ends, np.arange(CHUNK_ROWS, int(ends[-1]), CHUNK_ROWS), side="right")
    return np.unique(np.concatenate([[0], cuts, [len(counts)]]))


def _chunk_items(counts: np.ndarray, popularity: np.ndarray, cdf: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user, item rank) of each rating of a group of users: distinct items per user, sorted by user."""
    n_items = len(popularity)
    light = np.flatnonzero(counts <= HEAVY_USER)
    users, ranks = _light_items(light, counts[light], cdf, rng)
    heavy_users, heavy_ranks = [users], [ranks]
    for user in np.flatnonzero(counts > HEAVY_USER):  # few users: exponential keys, the top `count` without repeats
        keys = np.log(rng.random(n_items)) / popularity
        heavy_ranks.append(np.argpartition(-keys, counts[user] - 1)[: counts[user]])
        heavy_users.append(np.full(counts[user], user))
    users, ranks = np.concatenate(heavy_users), np.concatenate(heavy_ranks)
    order = np.argsort(users, kind="stable")
    return users[order], ranks[order]


def _light_items(users: np.ndarray, counts: np.ndarray, cdf: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct popularity-weighted items for each user: draw with repeats, drop them, draw again for the short."""
    n_items = len(cdf)
    chosen_users, chosen_ranks = np.zeros(0, np.int64), np.zeros(0, np.int64)
    missing = counts.copy()
    while missing.sum():
        short = np.flatnonzero(missing)
        draws = (missing[short] * 3) // 2 + 8
        new_users = np.repeat(users[short], draws)
        new_ranks = np.minimum(np.searchsorted(cdf, rng.random(int(draws.sum())), side="right"), n_items - 1)
        all_users = np.concatenate([chosen_users, new_users])
        all_ranks = np.concatenate([chosen_ranks, new_ranks])
        _, first = np.unique(all_users * n_items + all_ranks, return_index=True)
        first.sort()  # keep the first draw of each (user, item), in draw order
        all_users, all_ranks = all_users[first], all_ranks[first]
        order = np.argsort(all_users, kind="stable")
        all_users, all_ranks = all_users[order], all_ranks[order]
        starts = np.searchsorted(all_users, users)
        rank_in_user = np.arange(len(all_users)) - np.repeat(starts, np.diff(np.append(starts, len(all_users))))
        keep = rank_in_user < np.repeat(counts, np.diff(np.append(starts, len(all_users))))
        chosen_users, chosen_ranks = all_users[keep], all_ranks[keep]
        missing = counts - np.bincount(np.searchsorted(users, chosen_users), minlength=len(users))
    return chosen_users, chosen_ranks


def _chunk_text(user_ids: np.ndarray, movie_ids: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> str:
    """CSV lines of one group of users, sorted by userId then movieId, with ratings and in-period timestamps."""
    order = np.lexsort((movie_ids, user_ids))
    user_ids, movie_ids = user_ids[order], movie_ids[order]
    n_users = len(counts)
    span = LAST_TIME - FIRST_TIME
    # Half the users rate in one sitting (up to a day); the others over a lognormal period, median a month.
    burst = rng.random(n_users) < 0.5
    period = np.where(burst, rng.random(n_users) * 86_400, rng.lognormal(np.log(30 * 86_400), 2.0, n_users))
    period = np.minimum(period, span)
    start = FIRST_TIME + rng.random(n_users) * (span - period)
    per_row = np.repeat(np.arange(n_users), counts)
    stamps = (start[per_row] + rng.random(len(per_row)) * period[per_row]).astype(np.int64)
    stars = RATINGS[rng.choice(len(RATINGS), len(per_row), p=RATING_SHARES / RATING_SHARES.sum())]
    return "".join(map("{},{},{},{}\n".format, user_ids.tolist(), movie_ids.tolist(), stars.tolist(), stamps.tolist()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.data.synthetic", description=__doc__)
    parser.add_argument("--rows", type=int, required=True, help="ratings to write (25000000 for ML-25M's size)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the ratings.csv to write (read it with --format ml-latest)")
    parser.add_argument("--seed", type=int, default=0, help="same seed and rows, same bytes")
    parser.add_argument("--items", type=int, default=ML25M_ITEMS, help="movies to draw from (ML-25M rated 59047)")
    args = parser.parse_args(argv)
    try:
        summary = write_ratings(args.out, args.rows, args.seed, args.items)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {summary.path}: {summary.rows} ratings, {summary.users} users, {summary.items} movies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
