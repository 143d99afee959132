"""DUET's sequential protocol: time-ordered per-user sequences, a per-user time split, sampled negatives, cached."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from toolkit.data.interactions import Interactions
from toolkit.errors import DataFormatError

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2
NEGATIVE_CHUNK = 1 << 22  # fixed negatives drawn and checked this many at a time
# What a cache file holds besides n_items: the sequences. The rest derives from them in seconds; storing it too (the
# fixed negatives above all) made the cache of a 25M-rating file 3.7 GB instead of 0.4 GB, and slower to read.
CACHED = ("item_ids", "user_ids", "offsets", "sequence", "times")


@dataclass(frozen=True)
class SequenceProtocol:
    """How interactions become samples; saved with every run."""

    max_len: int = 30  # L: items before the target that the device model reads
    test_fraction: float = 0.2  # latest share of each user's interactions held out as that device's test data
    val_fraction: float = 0.1  # latest share of each user's training period used for early stopping
    train_negatives: int = 4  # sampled negatives per positive in training (fresh each epoch)
    eval_negatives: int = 99  # sampled negatives per positive for the test split (fixed)
    val_negatives: int = 49  # sampled negatives per positive for validation (early stopping only; fixed)
    min_user_interactions: int = 5  # users with fewer interactions are dropped
    max_users: int = 0  # keep only the first N users (0 = all); for tiny test runs
    seed: int = 0  # seeds the fixed evaluation negatives


@dataclass
class SequenceData:
    """All users' time-ordered item sequences (CSR) and the sample positions of each split."""

    protocol: SequenceProtocol
    n_items: int  # item ids run 1..n_items-1; 0 is padding
    item_ids: np.ndarray  # (n_items,) original id of each index, "" for padding
    user_ids: np.ndarray  # (n_users,) original user ids
    offsets: np.ndarray  # (n_users+1,) start of each user's sequence in `sequence`
    sequence: np.ndarray  # (n_interactions,) item indices, each user's in time order
    times: np.ndarray  # (n_interactions,) unix timestamp of each interaction in `sequence`
    test_start: np.ndarray  # (n_users,) position where each user's test period begins
    val_start: np.ndarray  # (n_users,) position where each user's validation period begins
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (user, position) of each sample
    eval_negatives: dict[str, np.ndarray]  # "val"/"test" -> (n_samples, negatives) fixed item indices (int32)
    interacted: np.ndarray  # sorted user * n_items + item keys of every interaction, for negative sampling

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def targets(self, split: str) -> np.ndarray:
        users, positions = self.splits[split]
        return self.sequence[self.offsets[users] + positions]

    def windows(self, users: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
        """The `length` items before position `ends` of each user, left-padded with 0."""
        starts = self.offsets[users]
        index = (starts + ends)[:, None] - length + np.arange(length)[None, :]
        valid = index >= starts[:, None]
        return np.where(valid, self.sequence[np.clip(index, 0, None)], 0).astype(np.int64)

    def window_times(self, users: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
        """Timestamps of the same window as `windows` (0 where padded)."""
        starts = self.offsets[users]
        index = (starts + ends)[:, None] - length + np.arange(length)[None, :]
        valid = index >= starts[:, None]
        return np.where(valid, self.times[np.clip(index, 0, None)], 0).astype(np.int64)

    def sample_negatives(self, users: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` items per row that the row's user never interacted with, uniformly."""
        negatives = rng.integers(1, self.n_items, size=(len(users), count))
        clash = np.flatnonzero(self._interacted(users[:, None], negatives))
        return self._redraw(users, negatives, clash, rng)

    def fixed_negatives(self, users: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """What `sample_negatives` returns for the same generator state (the same draws, in the same order), as
        int32 and a chunk of rows at a time: no full-size int64 temporaries at millions of samples, and each chunk
        of users (ascending, as in the splits) checked against a (user, item) table of their items."""
        out = np.empty((len(users), count), np.int32)
        ascending = bool(np.all(np.diff(users) >= 0))
        max_rows = max(1, NEGATIVE_CHUNK // max(count, 1))
        table_users = max(1, NEGATIVE_CHUNK // self.n_items)  # users whose items fit one table of NEGATIVE_CHUNK cells
        table = np.zeros(table_users * self.n_items, bool) if ascending else None  # cleared after each chunk
        clashes = []  # flat indices of draws the user interacted with, ascending (the order of a boolean mask)
        start = 0
        while start < len(users):
            stop = min(start + max_rows, len(users))
            if table is not None:
                stop = min(stop, int(np.searchsorted(users, users[start] + table_users)))
            block = out[start:stop]
            # Consecutive draws are one big draw, and int32 draws below 2**31 the same numbers as int64 draws.
            block[:] = rng.integers(1, self.n_items, size=block.shape, dtype=np.int32)
            chunk = users[start:stop]
            if table is not None:
                first, last = int(chunk[0]), int(chunk[-1])
                span = slice(self.offsets[first], self.offsets[last + 1])
                owners = np.repeat(np.arange(last - first + 1) * self.n_items, np.diff(self.offsets[first : last + 2]))
                table[owners + self.sequence[span]] = True
                clash = np.take(table, ((chunk - first) * self.n_items).astype(np.int32)[:, None] + block)
                table[owners + self.sequence[span]] = False
            else:
                clash = self._interacted(chunk[:, None], block)
            clashes.append(np.flatnonzero(clash) + start * count)
            start = stop
        return self._redraw(users, out, np.concatenate(clashes) if clashes else np.zeros(0, np.int64), rng)

    def _redraw(self, users: np.ndarray, negatives: np.ndarray, clash: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        """Draw the cells at flat indices `clash` (ascending, a boolean mask's order) again until none is an item of
        its row's user; only a redrawn cell can clash again."""
        count = negatives.shape[1]
        flat = negatives.reshape(-1)
        for _ in range(100):
            if not clash.size:
                return negatives
            flat[clash] = rng.integers(1, self.n_items, size=clash.size)
            clash = clash[self._interacted(users[clash // count], flat[clash])]
        raise DataFormatError("could not sample negatives: some user interacted with nearly every item")

    def _interacted(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_items + items
        found = np.searchsorted(self.interacted, keys)
        found = np.minimum(found, len(self.interacted) - 1)
        return self.interacted[found] == keys


def build_sequences(interactions: Interactions, protocol: SequenceProtocol, cache_dir: Path | None) -> SequenceData:
    """Apply the protocol, reading and writing a cache keyed by the source's hash and the settings."""
    return cached_sequences(interactions.fingerprint, lambda: interactions, protocol, cache_dir)


def cached_sequences(fingerprint: str, load: Callable[[], Interactions], protocol: SequenceProtocol,
                     cache_dir: Path | None) -> SequenceData:
    """The protocol applied to the interactions whose fingerprint is given: from the cache when it holds them,
    else built from `load()` (called only then, so a cached file is not parsed again) and cached."""
    cache_file = cache_dir / f"sequences-{_cache_key(fingerprint, protocol)}.npz" if cache_dir else None
    if cache_file and cache_file.exists():
        try:
            return _load_cache(cache_file, protocol)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            logger.warning("the cache %s is unreadable (%s): rebuilding it", cache_file, err)
    interactions = load()
    data = _build(interactions.frame, protocol)
    if cache_dir:  # keyed by what was read (the same fingerprint unless the file changed in between)
        _save_cache(cache_dir / f"sequences-{_cache_key(interactions.fingerprint, protocol)}.npz", data)
    return data


def _cache_key(fingerprint: str, protocol: SequenceProtocol) -> str:
    return hashlib.sha256(json.dumps([CACHE_FORMAT, fingerprint, asdict(protocol)], sort_keys=True).encode()
                          ).hexdigest()[:24]


def _build(frame: pd.DataFrame, protocol: SequenceProtocol) -> SequenceData:
    """The protocol applied to an interaction log: each user's first rating of each item, in time order."""
    if protocol.max_len < 1 or not 0 < protocol.test_fraction < 1 or not 0 <= protocol.val_fraction < 1:
        raise DataFormatError(f"invalid protocol settings: {protocol}")
    users, user_names = _codes(frame["user"])
    items, item_names = _codes(frame["item"])
    stamps = frame["timestamp"].to_numpy(np.int64)
    # Rows (file positions) kept: the first rating of each (user, item), of users with enough of them.
    rows = _first_of_each(users.astype(np.int64) * len(item_names) + items)
    minimum = max(protocol.min_user_interactions, 3)
    rows = rows[np.bincount(users[rows], minlength=len(user_names))[users[rows]] >= minimum]
    if not rows.size:
        raise DataFormatError(f"no user has at least {minimum} interactions; nothing to train on")
    user_index, user_order = pd.factorize(users[rows], sort=False)  # users numbered in order of first appearance
    if protocol.max_users:
        rows, user_index = rows[user_index < protocol.max_users], user_index[user_index < protocol.max_users]
        user_order = user_order[: protocol.max_users]
    # Items numbered 1.. in the order of their ids as text; 0 is padding.
    present = np.unique(items[rows])
    present = present[np.argsort(np.asarray(item_names[present], dtype=str), kind="stable")]
    item_index = np.zeros(len(item_names), np.int64)
    item_index[present] = np.arange(1, len(present) + 1)
    rows = rows[_by_user_then_time(user_index, stamps[rows])]  # ties keep file order
    offsets = np.concatenate([[0], np.cumsum(np.bincount(user_index, minlength=len(user_order)))]).astype(np.int64)
    sequence, times = item_index[items[rows]], stamps[rows]
    del rows, user_index  # before the protocol's arrays are made: the peak of memory is there
    item_ids = np.array([""] + [str(x) for x in item_names[present]], dtype=str)
    user_ids = np.array([str(x) for x in user_names[user_order]], dtype=str)
    return _with_splits(protocol, len(present) + 1, item_ids, user_ids, offsets, sequence, times)


def _with_splits(protocol: SequenceProtocol, n_items: int, item_ids: np.ndarray, user_ids: np.ndarray,
                 offsets: np.ndarray, sequence: np.ndarray, times: np.ndarray) -> SequenceData:
    """Time-ordered sequences with what the protocol derives from them: the splits, the index of who interacted
    with what, and the fixed negatives (recomputed on a cache hit: the cache holds only the sequences)."""
    n_users = len(user_ids)
    counts = np.diff(offsets)
    n_test = np.maximum(1, np.round(counts * protocol.test_fraction).astype(np.int64))
    test_start = counts - n_test
    n_val = np.where(protocol.val_fraction > 0,
                     np.maximum(1, np.round(test_start * protocol.val_fraction).astype(np.int64)), 0)
    val_start = np.maximum(test_start - n_val, 1)
    splits = {
        "train": _positions(np.ones(n_users, np.int64), val_start),
        "val": _positions(val_start, test_start),
        "test": _positions(test_start, counts),
        "fit": _positions(np.ones(n_users, np.int64), test_start),  # train + val: all the cloud's labelled data
    }
    interacted = np.repeat(np.arange(n_users, dtype=np.int64), counts) * n_items + sequence
    interacted.sort()
    data = SequenceData(protocol, n_items, item_ids, user_ids, offsets, sequence, times, test_start, val_start,
                        splits, {}, interacted)
    rng = np.random.default_rng(protocol.seed)
    for split, count in (("val", protocol.val_negatives), ("test", protocol.eval_negatives)):
        users, _ = splits[split]
        data.eval_negatives[split] = data.fixed_negatives(users, count, rng)
    logger.info("%d users, %d items, %d interactions", n_users, n_items - 1, len(sequence))
    return data


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each distinct key, ascending (a stable sort, not a hash table)."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    first = np.ones(len(keys), bool)
    first[1:] = ranked[1:] != ranked[:-1]
    keep = np.zeros(len(keys), bool)
    keep[order[first]] = True
    return np.flatnonzero(keep)


def _by_user_then_time(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """The stable order by (user, timestamp): one sort of a combined key when the timestamps fit 32 bits."""
    if stamps.size and stamps.min() >= 0 and stamps.max() < 1 << 32:
        return np.argsort(users.astype(np.int64) << 32 | stamps, kind="stable")
    return np.lexsort((stamps, users))


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column of ids as (code of each row, the id of each code): a categorical's own, else factorized."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), np.asarray(column.cat.categories, dtype=object)
    codes, names = pd.factorize(column)
    return codes, np.asarray(names, dtype=object)


def _positions(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.maximum(ends - starts, 0)
    users = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return users, first + np.arange(lengths.sum(), dtype=np.int64)


def _save_cache(path: Path, data: SequenceData) -> None:
    """Write the cache file; a cache directory that cannot be written costs a warning, not the run (the cache only
    saves time)."""
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.npz")  # torchrun ranks may write it at once
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, n_items=np.asarray(data.n_items), **{name: getattr(data, name) for name in CACHED})
        partial.replace(path)
    except OSError as err:
        logger.warning("cannot write the data cache %s (%s); going on without it", path, err.strerror or err)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _load_cache(path: Path, protocol: SequenceProtocol) -> SequenceData:
    with np.load(path, allow_pickle=False) as z:
        return _with_splits(protocol, int(z["n_items"]), *(z[name] for name in CACHED))
