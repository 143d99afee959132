"""The synthetic ML-25M-shaped ratings file and the data path that reads it: layout, determinism, what loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit.data import interactions
from toolkit.data.interactions import file_fingerprint, load_file
from toolkit.data.sequences import SequenceProtocol, build_sequences
from toolkit.data.synthetic import HEADER, MIN_PER_USER, main, write_ratings
from toolkit.errors import ConfigError, DataFormatError

ROWS = 60_000  # about 390 users: every code path of the generator, in about a second


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "ratings.csv"
    return write_ratings(path, ROWS, seed=3)


def test_the_file_has_movielens_layout_sorted_by_user_then_movie(synthetic):
    assert synthetic.path.read_text().startswith(HEADER)
    table = pd.read_csv(synthetic.path)
    assert list(table.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert len(table) == synthetic.rows == ROWS
    assert table["userId"].nunique() == synthetic.users and table["movieId"].nunique() == synthetic.items
    assert (table.sort_values(["userId", "movieId"], kind="stable").index == table.index).all()
    assert not table.duplicated(["userId", "movieId"]).any()  # each movie rated once per user
    assert set(table["rating"]) <= {x / 2 for x in range(1, 11)}
    assert table["timestamp"].between(789_652_009, 1_574_327_703).all()


def test_every_user_has_at_least_20_ratings_and_the_counts_are_heavy_tailed(synthetic):
    counts = pd.read_csv(synthetic.path)["userId"].value_counts()
    assert counts.min() >= MIN_PER_USER
    assert counts.max() > 5 * counts.median()  # ML-25M: median 71, mean 154, max 32202


def test_item_popularity_is_skewed(synthetic):
    popularity = pd.read_csv(synthetic.path)["movieId"].value_counts().to_numpy()
    top = popularity[: max(1, len(popularity) // 100)].sum() / popularity.sum()
    assert top > 0.05  # the top 1% of movies draw many times their share of the ratings


def test_same_seed_same_bytes_other_seed_other_bytes(synthetic, tmp_path):
    again = write_ratings(tmp_path / "again.csv", ROWS, seed=3)
    other = write_ratings(tmp_path / "other.csv", ROWS, seed=4)
    assert again.path.read_bytes() == synthetic.path.read_bytes()
    assert other.path.read_bytes() != synthetic.path.read_bytes()


def test_it_loads_as_ml_latest_into_the_expected_sequences(synthetic):
    loaded = load_file(synthetic.path, "ml-latest")
    assert loaded.fingerprint == file_fingerprint(synthetic.path)
    data = build_sequences(loaded, SequenceProtocol(), None)
    assert data.n_users == synthetic.users and data.n_items - 1 == synthetic.items
    assert len(data.sequence) == ROWS and data.offsets[-1] == ROWS
    assert (np.diff(data.offsets) >= MIN_PER_USER).all()
    assert data.eval_negatives["test"].shape == (len(data.splits["test"][0]), 99)


def test_a_file_of_many_blocks_loads_as_one_block(synthetic, monkeypatch):
    whole = load_file(synthetic.path, "ml-latest").frame
    monkeypatch.setattr(interactions, "READ_BLOCK", 50_000)  # about 40 blocks, cut at line ends
    blocks = load_file(synthetic.path, "ml-latest").frame
    for column in ("user", "item"):
        assert blocks[column].astype(str).tolist() == whole[column].astype(str).tolist()
    np.testing.assert_array_equal(blocks["timestamp"].to_numpy(), whole["timestamp"].to_numpy())


def test_clean_blocks_read_as_the_line_by_line_parser_reads_them(tmp_path, monkeypatch):
    rows = [f"{user},{item},{rating},{stamp}" for user, item, rating, stamp in zip(
        ["1", " 01", "A2X", "7 "] * 500, ["10", "010", "x y", " 5"] * 500, ["4", "3.5", " 5 ", "1e0"] * 500,
        ["100", " 12 ", "+7", "007"] * 500)]
    rows[500] = "9,9,4,1e3"  # a block with a float timestamp, and blocks with Windows line ends: read line by line
    path = tmp_path / "mixed.csv"
    path.write_bytes(("userId,movieId,rating,timestamp\n" + "\n".join(rows[:1000]) + "\n" + "\r\n".join(rows[1000:])
                      ).encode())
    line_by_line = load_file(path, "ml-latest").frame  # one block holding a \r: the line-by-line parser reads it
    monkeypatch.setattr(interactions, "READ_BLOCK", 2_000)  # now most blocks are clean
    clean_block = interactions._parse_clean_block
    kinds = []
    monkeypatch.setattr(interactions, "_parse_clean_block", lambda *args, **kwargs: kinds.append(
        clean_block(*args, **kwargs)) or kinds[-1])
    mixed = load_file(path, "ml-latest").frame
    assert sum(kind is None for kind in kinds) >= 5 and sum(kind is not None for kind in kinds) >= 5
    for column in ("user", "item"):
        assert mixed[column].astype(str).tolist() == line_by_line[column].astype(str).tolist()
    assert mixed["timestamp"].tolist() == line_by_line["timestamp"].tolist()
    assert line_by_line["user"].astype(str).tolist()[:4] == ["1", "01", "A2X", "7"]


def test_fixed_negatives_are_the_sampled_negatives_of_the_same_draws(synthetic):
    data = build_sequences(load_file(synthetic.path, "ml-latest"), SequenceProtocol(), None)
    for split, count in (("val", 49), ("test", 99)):
        users = data.splits[split][0]
        fixed = data.fixed_negatives(users, count, np.random.default_rng(5))
        sampled = data.sample_negatives(users, count, np.random.default_rng(5))
        assert fixed.dtype == np.int32
        np.testing.assert_array_equal(fixed, sampled)


def test_the_cache_holds_the_sequences_and_a_warm_load_rebuilds_the_rest(synthetic, tmp_path):
    loaded = load_file(synthetic.path, "ml-latest")
    cold = build_sequences(loaded, SequenceProtocol(), tmp_path)
    (cache,) = tmp_path.glob("sequences-*.npz")
    with np.load(cache) as stored:
        assert set(stored.files) == {"n_items", "item_ids", "user_ids", "offsets", "sequence", "times"}
    warm = build_sequences(loaded, SequenceProtocol(), tmp_path)
    for name in ("offsets", "sequence", "times", "test_start", "val_start", "interacted", "item_ids", "user_ids"):
        np.testing.assert_array_equal(getattr(warm, name), getattr(cold, name))
    for split in cold.splits:
        np.testing.assert_array_equal(warm.splits[split][1], cold.splits[split][1])
    for split in cold.eval_negatives:
        np.testing.assert_array_equal(warm.eval_negatives[split], cold.eval_negatives[split])


def test_a_fault_in_a_later_block_names_its_line(synthetic, tmp_path, monkeypatch):
    lines = synthetic.path.read_text().splitlines(keepends=True)
    lines[40_000] = "7,8,4.0,yesterday\n"
    path = tmp_path / "damaged.csv"
    path.write_text("".join(lines))
    monkeypatch.setattr(interactions, "READ_BLOCK", 50_000)
    with pytest.raises(DataFormatError, match=r"damaged.csv, line 40001: timestamp 'yesterday' is not a number"):
        load_file(path, "ml-latest")


def test_too_few_rows_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="at least 20"):
        write_ratings(tmp_path / "tiny.csv", 5)
    assert main(["--rows", "5", "--out", str(tmp_path / "tiny.csv")]) == 2
    assert "at least 20" in capsys.readouterr().err
