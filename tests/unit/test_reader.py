"""
Resumable output chunks from an engine stream (csvc.stdio.reader).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvc.stdio.frames import encode_frame
from csvc.stdio.reader import CursorError, OutputReader, format_cursor, parse_cursor

messages = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.binary(min_size=1, max_size=300)), min_size=1, max_size=40
)


def multiplexed(items):
    return b"".join(encode_frame(stream, body) for stream, body in items)


def feed_in_pieces(reader, data, cuts):
    chunks, previous = [], 0
    for cut in sorted(cuts) + [len(data)]:
        chunks.extend(reader.feed(data[previous:cut]))
        previous = cut
    return chunks


def per_stream(items):
    out = {1: b"", 2: b""}
    for stream, data, *_ in items:
        out[stream] += data
    return out


def test_cursor_round_trip_and_errors():
    assert parse_cursor("") == (0, 0)
    assert parse_cursor("C|12|3") == (12, 3)
    assert format_cursor((12, 3)) == "C|12|3"
    for bad in ("C|1", "C|-1|0", "T|x|0|0", "C|a|b", "R|5", "C|1|2|3"):
        with pytest.raises(CursorError):
            parse_cursor(bad)
    with pytest.raises(CursorError):
        OutputReader(False, "C|x|0")


def test_chunks_merge_and_split_at_the_size_limit():
    reader = OutputReader(False, chunk_size=4)
    data = encode_frame(1, b"ab") + encode_frame(1, b"cdefg") + encode_frame(2, b"xy")
    # Chunks are filled to the limit, pieces split where they cross it.
    assert reader.feed(data) == [
        (1, b"abcd", "C|4|0"),
        (1, b"efg", "C|7|0"),
        (2, b"xy", "C|7|2"),
    ]
    assert reader.cursor == "C|7|2"


def test_frames_of_other_streams_are_ignored():
    reader = OutputReader(False)
    assert reader.feed(encode_frame(0, b"in") + encode_frame(3, b"sys") + encode_frame(1, b"o")) == [
        (1, b"o", "C|1|0")
    ]


def test_tty_counts_raw_bytes():
    reader = OutputReader(True, "C|5|0")
    assert reader.feed(b"\x1b[1mhi") == [(1, b"\x1b[1mhi", "C|11|0")]


@settings(max_examples=300)
@given(items=messages, cuts=st.lists(st.integers(0, 20000), max_size=10), size=st.integers(1, 64))
def test_attach_stream_is_chunked_losslessly(items, cuts, size):
    data = multiplexed(items)
    cuts = [c for c in cuts if c <= len(data)]
    chunks = feed_in_pieces(OutputReader(False, chunk_size=size), data, cuts)
    assert per_stream(chunks) == per_stream(items)
    assert all(0 < len(c[1]) <= size for c in chunks)
    # Byte for byte, in the order of the stream.
    assert [b for s, d, _ in chunks for b in [(s, x) for x in d]] == [
        (s, x) for s, body in items for x in body
    ]


@settings(max_examples=300)
@given(items=messages, data=st.data(), size=st.integers(1, 64))
def test_the_log_resumes_exactly_after_any_chunk(items, data, size):
    """
    The agent dies after any chunk; the new agent reads the whole log again
    from the cursor of the last chunk the store has: the rest comes out, no
    byte lost or repeated, whatever the log's interleaving of the streams.
    """
    chunks = OutputReader(False, chunk_size=size).feed(multiplexed(items))
    cut = data.draw(st.integers(0, len(chunks)))
    cursor = chunks[cut - 1][2] if cut else ""
    persisted = per_stream(chunks[:cut])
    # The log may interleave the two streams differently from the attach
    # stream, but keeps each stream's own order.
    order = [i[0] for i in data.draw(st.permutations(items))]
    by_stream = {1: [i for i in items if i[0] == 1], 2: [i for i in items if i[0] == 2]}
    relog = [by_stream[s].pop(0) for s in order]
    resumed = OutputReader(False, cursor, skip=True, chunk_size=size).feed(multiplexed(relog))
    rest = per_stream(resumed)
    whole = per_stream(items)
    assert persisted[1] + rest[1] == whole[1]
    assert persisted[2] + rest[2] == whole[2]
    if resumed:
        assert resumed[-1][2] == format_cursor((len(whole[1]), len(whole[2])))


@given(body=st.binary(min_size=1, max_size=2000), cut=st.integers(0, 2000), size=st.integers(1, 100))
def test_tty_log_resumes_exactly(body, cut, size):
    cut = min(cut, len(body))
    first = OutputReader(True, chunk_size=size).feed(body[:cut])
    cursor = first[-1][2] if first else ""
    rest = OutputReader(True, cursor, skip=True, chunk_size=size).feed(body)
    assert b"".join(c[1] for c in first) + b"".join(c[1] for c in rest) == body
