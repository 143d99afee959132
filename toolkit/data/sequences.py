"""DUET's sequential protocol: time-ordered per-user sequences, a per-user time split, sampled negatives, cached."""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.data.interactions import Interactions
from toolkit.errors import DataFormatError

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2


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
    eval_negatives: dict[str, np.ndarray]  # "val"/"test" -> (n_samples, negatives) fixed item indices
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
        for _ in range(100):
            clash = self._interacted(users[:, None], negatives)
            if not clash.any():
                return negatives
            negatives[clash] = rng.integers(1, self.n_items, size=int(clash.sum()))
        raise DataFormatError("could not sample negatives: some user interacted with nearly every item")

    def _interacted(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_items + items
        found = np.searchsorted(self.interacted, keys)
        found = np.minimum(found, len(self.interacted) - 1)
        return self.interacted[found] == keys


def build_sequences(interactions: Interactions, protocol: SequenceProtocol, cache_dir: Path | None) -> SequenceData:
    """Apply the protocol, reading and writing a cache keyed by the source's hash and the settings."""
    key = hashlib.sha256(
        json.dumps([CACHE_FORMAT, interactions.fingerprint, asdict(protocol)], sort_keys=True).encode()
    ).hexdigest()[:24]
    cache_file = cache_dir / f"sequences-{key}.npz" if cache_dir else None
    if cache_file and cache_file.exists():
        try:
            return _load_cache(cache_file, protocol)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            logger.warning("the cache %s is unreadable (%s): rebuilding it", cache_file, err)
    data = _build(interactions.frame, protocol)
    if cache_file:
        _save_cache(cache_file, data)
    return data


def _build(frame: pd.DataFrame, protocol: SequenceProtocol) -> SequenceData:
    if protocol.max_len < 1 or not 0 < protocol.test_fraction < 1 or not 0 <= protocol.val_fraction < 1:
        raise DataFormatError(f"invalid protocol settings: {protocol}")
    frame = frame.reset_index(drop=True)
    frame = frame.assign(order=np.arange(len(frame)))
    frame = frame.drop_duplicates(["user", "item"], keep="first")
    sizes = frame.groupby("user", sort=False)["item"].transform("size")
    frame = frame[sizes >= max(protocol.min_user_interactions, 3)]
    if frame.empty:
        raise DataFormatError(
            f"no user has at least {max(protocol.min_user_interactions, 3)} interactions; nothing to train on"
        )
    user_codes, user_ids = pd.factorize(frame["user"], sort=False)
    if protocol.max_users:
        frame = frame[user_codes < protocol.max_users]
        user_codes, user_ids = pd.factorize(frame["user"], sort=False)
    item_codes, item_ids = pd.factorize(frame["item"], sort=True)
    frame = pd.DataFrame({"u": user_codes, "i": item_codes + 1, "t": frame["timestamp"].to_numpy(),
                          "o": frame["order"].to_numpy()})
    frame = frame.sort_values(["u", "t", "o"], kind="stable")
    n_users = len(user_ids)
    n_items = len(item_ids) + 1
    counts = np.bincount(frame["u"].to_numpy(), minlength=n_users)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    sequence = frame["i"].to_numpy().astype(np.int64)
    times = frame["t"].to_numpy().astype(np.int64)
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
    interacted = np.sort(np.repeat(np.arange(n_users, dtype=np.int64), counts) * n_items + sequence)
    data = SequenceData(protocol, n_items, np.array([""] + [str(x) for x in item_ids], dtype=str),
                        np.array([str(x) for x in user_ids], dtype=str),
                        offsets, sequence, times, test_start, val_start, splits, {}, interacted)
    rng = np.random.default_rng(protocol.seed)
    for split, count in (("val", protocol.val_negatives), ("test", protocol.eval_negatives)):
        users, _ = splits[split]
        data.eval_negatives[split] = data.sample_negatives(users, count, rng)
    logger.info("%d users, %d items, %d interactions", n_users, n_items - 1, len(sequence))
    return data


def _positions(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.maximum(ends - starts, 0)
    users = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return users, first + np.arange(lengths.sum(), dtype=np.int64)


def _save_cache(path: Path, data: SequenceData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "n_items": np.asarray(data.n_items), "item_ids": data.item_ids, "user_ids": data.user_ids,
        "offsets": data.offsets, "sequence": data.sequence, "times": data.times, "test_start": data.test_start,
        "val_start": data.val_start, "interacted": data.interacted,
    }
    for split, (users, positions) in data.splits.items():
        arrays[f"split_{split}_users"] = users
        arrays[f"split_{split}_positions"] = positions
    for split, negatives in data.eval_negatives.items():
        arrays[f"negatives_{split}"] = negatives
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)


def _load_cache(path: Path, protocol: SequenceProtocol) -> SequenceData:
    with np.load(path, allow_pickle=False) as z:
        splits = {s: (z[f"split_{s}_users"], z[f"split_{s}_positions"]) for s in ("train", "val", "test", "fit")}
        negatives = {s: z[f"negatives_{s}"] for s in ("val", "test")}
        return SequenceData(protocol, int(z["n_items"]), z["item_ids"], z["user_ids"], z["offsets"], z["sequence"],
                            z["times"], z["test_start"], z["val_start"], splits, negatives, z["interacted"])
