"""Data loaders for every supported format, their errors, and DUET's sequential protocol on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolkit.data.interactions import load_default, load_file
from toolkit.data.sequences import SequenceProtocol, build_sequences
from toolkit.errors import DataFormatError

ROWS = [("1", "10", "4", "100"), ("1", "11", "3", "90"), ("2", "10", "5", "50")]
LAYOUTS = {
    "ml-100k": ("\t", ""),
    "ml-1m": ("::", ""),
    "ml-latest": (",", "userId,movieId,rating,timestamp\n"),
    "amazon": (",", ""),
}


def _write(tmp_path: Path, fmt: str, rows=ROWS, name="ratings") -> Path:
    separator, header = LAYOUTS[fmt]
    path = tmp_path / f"{name}-{fmt}.txt"
    path.write_text(header + "".join(separator.join(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", sorted(LAYOUTS))
def test_each_format_loads(tmp_path, fmt):
    interactions = load_file(_write(tmp_path, fmt), fmt)
    frame = interactions.frame
    assert frame["user"].tolist() == ["1", "1", "2"]
    assert frame["item"].tolist() == ["10", "11", "10"]
    assert frame["timestamp"].tolist() == [100, 90, 50]
    assert len(interactions.fingerprint) == 64


def test_amazon_string_ids_load(tmp_path):
    path = tmp_path / "amazon.csv"
    path.write_text("A2XVJBSRI3SWDI,0000031887,5.0,1383523200\nA2G0LNLN79Q6HR,0000031887,4.0,1337990400\n")
    assert load_file(path, "amazon").frame["user"].tolist() == ["A2XVJBSRI3SWDI", "A2G0LNLN79Q6HR"]


@pytest.mark.parametrize("fmt,line", [("ml-100k", 2), ("ml-latest", 3)])
def test_wrong_field_count_names_file_and_line(tmp_path, fmt, line):
    rows = [ROWS[0], ("1", "11", "3"), ROWS[2]]
    path = _write(tmp_path, fmt, rows)
    with pytest.raises(DataFormatError, match=rf"{path.name}, line {line}: expected 4 fields .* found 3"):
        load_file(path, fmt)


def test_non_numeric_timestamp_names_line(tmp_path):
    path = _write(tmp_path, "ml-1m", [ROWS[0], ROWS[1], ("2", "10", "5", "yesterday")])
    with pytest.raises(DataFormatError, match=r"line 3: timestamp 'yesterday' is not a number"):
        load_file(path, "ml-1m")


def test_truncated_file_names_last_line(tmp_path):
    path = _write(tmp_path, "ml-100k")
    path.write_bytes(path.read_bytes() + b"3\t12\t4")  # cut mid-line
    with pytest.raises(DataFormatError, match=r"line 4: expected 4 fields"):
        load_file(path, "ml-100k")


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.dat"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="empty.dat: the file holds no ratings"):
        load_file(empty, "ml-1m")
    header_only = tmp_path / "ratings.csv"
    header_only.write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(DataFormatError, match="no ratings"):
        load_file(header_only, "ml-latest")


def test_missing_file_binary_file_and_unknown_format(tmp_path):
    with pytest.raises(DataFormatError, match="cannot read file"):
        load_file(tmp_path / "nope.csv", "amazon")
    binary = tmp_path / "blob.dat"
    binary.write_bytes(b"1\t2\t3\t4\n\xff\xfe\x00")
    with pytest.raises(DataFormatError, match="line 2: not valid UTF-8"):
        load_file(binary, "ml-100k")
    with pytest.raises(DataFormatError, match="unknown format"):
        load_file(binary, "parquet")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    protocol = SequenceProtocol(max_users=40)
    return build_sequences(load_default(), protocol, tmp_path_factory.mktemp("cache"))


def test_embedded_movielens_is_the_documented_data():
    frame = load_default().frame
    assert len(frame) == 100_004
    assert frame["user"].nunique() == 671


def test_time_split_holds_out_each_users_latest_fifth(small_data):
    d = small_data
    counts = np.diff(d.offsets)
    n_test = counts - d.test_start
    assert (n_test >= 1).all()
    assert np.abs(n_test - counts * 0.2).max() <= 0.5 + 1e-9
    for user in range(d.n_users):
        times = d.times[d.offsets[user] : d.offsets[user + 1]]
        assert (np.diff(times) >= 0).all()  # time order within each user
    users, positions = d.splits["test"]
    assert (positions >= d.test_start[users]).all()
    users, positions = d.splits["train"]
    assert (positions < d.val_start[users]).all() and (positions >= 1).all()


def test_history_is_the_items_right_before_the_target(small_data):
    d = small_data
    users, positions = d.splits["test"]
    history = d.windows(users[:50], positions[:50], 30)
    for row, (u, p) in enumerate(zip(users[:50], positions[:50])):
        expected = d.sequence[d.offsets[u] + max(0, p - 30) : d.offsets[u] + p]
        assert history[row, 30 - len(expected) :].tolist() == expected.tolist()
        assert (history[row, : 30 - len(expected)] == 0).all()


def test_negatives_are_items_the_user_never_touched(small_data):
    d = small_data
    users, _ = d.splits["test"]
    negatives = d.eval_negatives["test"]
    assert negatives.shape == (len(users), 99)
    for u, row in zip(users[:200], negatives[:200]):
        seen = set(d.sequence[d.offsets[u] : d.offsets[u + 1]].tolist())
        assert not seen & set(row.tolist())
    assert negatives.min() >= 1 and negatives.max() < d.n_items


def test_cache_is_reused_and_keyed_by_settings(tmp_path):
    interactions = load_default()
    first = build_sequences(interactions, SequenceProtocol(max_users=10), tmp_path)
    files = list(tmp_path.glob("sequences-*.npz"))
    assert len(files) == 1
    again = build_sequences(interactions, SequenceProtocol(max_users=10), tmp_path)
    np.testing.assert_array_equal(first.eval_negatives["test"], again.eval_negatives["test"])
    build_sequences(interactions, SequenceProtocol(max_users=10, seed=1), tmp_path)
    assert len(list(tmp_path.glob("sequences-*.npz"))) == 2


def test_corrupt_cache_is_rebuilt(tmp_path, caplog):
    interactions = load_default()
    build_sequences(interactions, SequenceProtocol(max_users=5), tmp_path)
    (cache,) = tmp_path.glob("sequences-*.npz")
    whole = cache.read_bytes()
    for broken in (b"not an npz", whole[: len(whole) // 2]):  # garbage, and a cache cut short (was BadZipFile)
        cache.write_bytes(broken)
        with caplog.at_level("WARNING"):
            data = build_sequences(interactions, SequenceProtocol(max_users=5), tmp_path)
        assert data.n_users == 5 and "rebuilding it" in caplog.text and cache.name in caplog.text
        assert cache.read_bytes() == whole  # rebuilt in place, byte for byte
        caplog.clear()


@pytest.mark.parametrize("stamp", ["1e30", "-5", "4102444801"])
def test_a_timestamp_outside_unix_seconds_of_this_century_is_refused_with_its_line(tmp_path, stamp):
    path = _write(tmp_path, "amazon", [ROWS[0], ("2", "10", "5", stamp)])
    with pytest.raises(DataFormatError, match=rf"line 2: timestamp '{stamp}' is not unix seconds between 0 and"):
        load_file(path, "amazon")


def test_an_id_with_a_control_character_is_refused_with_its_line(tmp_path):
    path = _write(tmp_path, "amazon", [ROWS[0], ROWS[1], ("2", "1\x000", "5", "50")])
    with pytest.raises(DataFormatError, match=r"line 3: item id '1\\x000' holds a control character"):
        load_file(path, "amazon")


@pytest.mark.parametrize("length", [300, 10_000, 10_000_000])
@pytest.mark.parametrize("column", [0, 1])
def test_an_id_longer_than_the_limit_is_refused_with_its_line_in_memory_that_follows_the_file(tmp_path, length, column):
    import tracemalloc

    from toolkit.data.interactions import MAX_ID_CHARS

    rows = [(str(u % 500 + 1), str(u % 3000 + 1), "4", str(881250949 + u)) for u in range(20_000)]
    rows[1000] = tuple("x" * length if i == column else v for i, v in enumerate(rows[1000]))
    path = _write(tmp_path, "amazon", rows)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=f"ratings-amazon.txt, line 1001: {('user', 'item')[column]} id 'x+'... has {length} "
                                                  f"characters; ids of at most {MAX_ID_CHARS} are accepted"):
            load_file(path, "amazon")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * path.stat().st_size + (40 << 20), peak  # was rows x longest id: 3.8 GB for a 0.5 MB file


def test_ids_up_to_the_limit_still_load(tmp_path):
    from toolkit.data.interactions import MAX_ID_CHARS

    rows = [("u" * MAX_ID_CHARS, "10", "4", "100"), ("b" * 40, "i" * 17, "3", "90"), ("2", "10", "5", "50")]
    frame = load_file(_write(tmp_path, "amazon", rows), "amazon").frame
    assert frame["user"].tolist() == ["u" * MAX_ID_CHARS, "b" * 40, "2"] and frame["item"].tolist()[1] == "i" * 17
