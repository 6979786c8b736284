"""
Resumable output chunks from an engine log stream (csvc.stdio.logreader).
"""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvc.stdio.frames import encode_frame
from csvc.stdio.logreader import CursorError, LogReader, parse_cursor, since_param

BASE = datetime(2026, 11, 26, 1, 25, 24, tzinfo=timezone.utc)


def stamp(nanos):
    """
    Docker's fixed-width RFC 3339 timestamp, ``nanos`` after BASE.
    """
    seconds, frac = divmod(nanos, 10**9)
    moment = BASE + timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
    assert len(text) == 30
    return text


def message(stream, ts, body):
    return encode_frame(stream, ts.encode("ascii") + b" " + body)


def feed_in_pieces(reader, data, cuts):
    chunks = []
    previous = 0
    for cut in sorted(cuts) + [len(data)]:
        chunks.extend(reader.feed(data[previous:cut]))
        previous = cut
    return chunks


def expand(pairs):
    """
    ``[(stream, bytes)]`` as a flat list of ``(stream, byte)``, so that
    different chunkings of one output compare equal.
    """
    return [(stream, b) for stream, data in pairs for b in data]


# -- cursors -----------------------------------------------------------------


def test_parse_cursor():
    assert parse_cursor("") == (None, ())
    assert parse_cursor("R|12") == ("R", (12,))
    assert parse_cursor("T|2026-11-26T01:25:24.812202554Z|3|7") == (
        "T",
        ("2026-11-26T01:25:24.812202554Z", 3, 7),
    )


def test_since_param_of_timestamp_cursor():
    expected_seconds = int(datetime(2026, 11, 26, 1, 25, 24, tzinfo=timezone.utc).timestamp())
    assert since_param("T|2026-11-26T01:25:24.812202554Z|0|5") == f"{expected_seconds}.812202554"


def test_since_param_keeps_leading_zero_nanos():
    expected_seconds = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp())
    assert since_param("T|2026-01-02T03:04:05.000000042Z|1|0") == f"{expected_seconds}.000000042"


def test_since_param_without_timestamp():
    assert since_param("") is None
    assert since_param("R|5") is None


BAD_CURSORS = [
    "X",
    "X|1",
    "R",
    "R|",
    "R|x",
    "R|1|2",
    "R|-5",
    "T|2026-11-26T01:25:24.812202554Z",
    "T|2026-11-26T01:25:24.812202554Z|0",
    "T|2026-11-26T01:25:24.812202554Z|a|0",
    "T|2026-11-26T01:25:24.812202554Z|0|b",
    "T|2026-11-26T01:25:24.812202554Z|0|-1",
    "T|2026-11-26T01:25:24.812202554Z|0|1|2",
    "T|garbage|0|0",
    "T||0|0",
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_bad_cursor_refused(cursor):
    with pytest.raises(CursorError):
        parse_cursor(cursor)
    with pytest.raises(CursorError):
        since_param(cursor)
    with pytest.raises(CursorError):
        LogReader(tty=False, cursor=cursor)
    with pytest.raises(CursorError):
        LogReader(tty=True, cursor=cursor)


def test_cursor_kind_must_match_tty():
    with pytest.raises(CursorError):
        LogReader(tty=True, cursor="T|2026-11-26T01:25:24.812202554Z|0|5")
    with pytest.raises(CursorError):
        LogReader(tty=False, cursor="R|5")


# -- non-TTY -----------------------------------------------------------------


def test_messages_become_chunks_with_cursors():
    ts1, ts2 = stamp(0), stamp(1)
    data = message(1, ts1, b"hello\n") + message(2, ts1, b"oops\n") + message(1, ts2, b"bye\n")
    reader = LogReader(tty=False)
    assert reader.feed(data) == [
        (1, b"hello\n", f"T|{ts1}|0|6"),
        (2, b"oops\n", f"T|{ts1}|1|5"),
        (1, b"bye\n", f"T|{ts2}|0|4"),
    ]
    assert reader.cursor == f"T|{ts2}|0|4"


def test_same_stream_messages_merge_within_a_feed():
    ts = stamp(0)
    data = message(1, ts, b"ab") + message(1, ts, b"cd")
    assert LogReader(tty=False).feed(data) == [(1, b"abcd", f"T|{ts}|1|2")]


def test_long_message_split_at_chunk_size():
    ts = stamp(0)
    reader = LogReader(tty=False, chunk_size=4)
    assert reader.feed(message(1, ts, b"abcdefghij")) == [
        (1, b"abcd", f"T|{ts}|0|4"),
        (1, b"efgh", f"T|{ts}|0|8"),
        (1, b"ij", f"T|{ts}|0|10"),
    ]


def test_resume_inside_a_message():
    ts = stamp(0)
    data = message(1, ts, b"first") + message(1, ts, b"second")
    reader = LogReader(tty=False, cursor=f"T|{ts}|1|3")
    assert reader.feed(data) == [(1, b"ond", f"T|{ts}|1|6")]


def test_empty_message_moves_cursor_without_output():
    ts = stamp(0)
    reader = LogReader(tty=False)
    assert reader.feed(message(1, ts, b"")) == []
    assert reader.cursor == f"T|{ts}|0|0"


def test_stdin_and_system_frames_ignored():
    ts = stamp(0)
    data = encode_frame(0, b"x") + encode_frame(3, b"y") + message(2, ts, b"e")
    assert LogReader(tty=False).feed(data) == [(2, b"e", f"T|{ts}|0|1")]


@st.composite
def log_messages(draw):
    """
    Messages of random streams and bodies, with non-decreasing timestamps
    that often repeat.
    """
    count = draw(st.integers(0, 12))
    nanos = 0
    messages = []
    for _ in range(count):
        nanos += draw(st.sampled_from([0, 0, 0, 1, 999_999_999, 1_000_000_000]))
        stream = draw(st.sampled_from([1, 2]))
        body = draw(st.binary(max_size=20) | st.sampled_from([b"\n", b"a\n", b"\n\n", b""]))
        messages.append((stream, stamp(nanos), body))
    return messages


def encode(messages):
    return b"".join(message(stream, ts, body) for stream, ts, body in messages)


def cuts_for(data):
    return st.lists(st.integers(0, len(data)), max_size=8)


def check_chunks(chunks, chunk_size):
    for i, (stream, data, cursor) in enumerate(chunks):
        assert stream in (1, 2)
        assert 0 < len(data) <= chunk_size
        assert cursor


def since(messages, cursor):
    """
    What Docker sends for ``since=<cursor's timestamp>``: every message
    stamped at or after it.
    """
    kind, fields = parse_cursor(cursor)
    assert kind == "T"
    return [m for m in messages if m[1] >= fields[0]]


@settings(max_examples=300)
@given(messages=log_messages(), chunk_size=st.integers(1, 12), data=st.data())
def test_non_tty_resume_from_any_chunk(messages, chunk_size, data):
    stream = encode(messages)
    expected = expand((s, body) for s, _ts, body in messages)

    chunks = feed_in_pieces(LogReader(tty=False, chunk_size=chunk_size), stream, data.draw(cuts_for(stream)))
    check_chunks(chunks, chunk_size)
    assert expand((s, d) for s, d, _c in chunks) == expected

    consumed = 0
    for stream_id, piece, cursor in chunks:
        consumed += len(piece)
        resent = encode(since(messages, cursor))
        reader = LogReader(tty=False, cursor=cursor, chunk_size=chunk_size)
        rest = feed_in_pieces(reader, resent, data.draw(cuts_for(resent)))
        check_chunks(rest, chunk_size)
        assert expand((s, d) for s, d, _c in rest) == expected[consumed:]


@settings(max_examples=200)
@given(messages=log_messages(), chunk_size=st.integers(1, 12), data=st.data())
def test_non_tty_resume_twice(messages, chunk_size, data):
    """
    A cursor produced by a resumed reader resumes just as well.
    """
    stream = encode(messages)
    expected = expand((s, body) for s, _ts, body in messages)
    chunks = LogReader(tty=False, chunk_size=chunk_size).feed(stream)
    if not chunks:
        return
    first = data.draw(st.integers(0, len(chunks) - 1))
    consumed = sum(len(d) for _s, d, _c in chunks[: first + 1])
    cursor = chunks[first][2]
    again = LogReader(tty=False, cursor=cursor, chunk_size=chunk_size).feed(encode(since(messages, cursor)))
    if not again:
        assert consumed == len(expected)
        return
    second = data.draw(st.integers(0, len(again) - 1))
    consumed += sum(len(d) for _s, d, _c in again[: second + 1])
    cursor = again[second][2]
    rest = LogReader(tty=False, cursor=cursor, chunk_size=chunk_size).feed(encode(since(messages, cursor)))
    assert expand((s, d) for s, d, _c in rest) == expected[consumed:]


@settings(max_examples=200)
@given(messages=log_messages(), chunk_size=st.integers(1, 12), data=st.data())
def test_non_tty_resume_from_reader_cursor_after_each_read(messages, chunk_size, data):
    """
    The agent keeps ``reader.cursor`` when a stream ends; resuming from it
    after any read loses and repeats nothing.
    """
    stream = encode(messages)
    expected = expand((s, body) for s, _ts, body in messages)
    cuts = sorted(data.draw(cuts_for(stream)))
    reader = LogReader(tty=False, chunk_size=chunk_size)
    consumed = 0
    previous = 0
    for cut in cuts + [len(stream)]:
        consumed += sum(len(d) for _s, d, _c in reader.feed(stream[previous:cut]))
        previous = cut
        if not reader.cursor:
            assert consumed == 0
            continue
        rest = LogReader(tty=False, cursor=reader.cursor, chunk_size=chunk_size).feed(
            encode(since(messages, reader.cursor))
        )
        assert expand((s, d) for s, d, _c in rest) == expected[consumed:]


@given(messages=log_messages(), chunk_size=st.integers(1, 12))
def test_non_tty_merges_within_one_feed(messages, chunk_size):
    """
    Within one feed, two neighbouring chunks of one stream could not have
    been one chunk.
    """
    chunks = LogReader(tty=False, chunk_size=chunk_size).feed(encode(messages))
    for (s1, d1, _), (s2, d2, _) in zip(chunks, chunks[1:]):
        if s1 == s2:
            assert len(d1) + len(d2) > chunk_size


# -- TTY -----------------------------------------------------------------------


def test_tty_raw_bytes_on_stdout():
    reader = LogReader(tty=True, chunk_size=4)
    assert reader.feed(b"abcdef") == [(1, b"abcd", "R|4"), (1, b"ef", "R|6")]
    assert reader.feed(b"g") == [(1, b"g", "R|7")]
    assert reader.cursor == "R|7"


def test_tty_resume_skips_consumed_bytes():
    reader = LogReader(tty=True, cursor="R|3")
    assert reader.feed(b"ab") == []
    assert reader.feed(b"cdef") == [(1, b"def", "R|6")]


@settings(max_examples=300)
@given(raw=st.binary(max_size=80), chunk_size=st.integers(1, 12), data=st.data())
def test_tty_resume_from_any_chunk(raw, chunk_size, data):
    chunks = feed_in_pieces(LogReader(tty=True, chunk_size=chunk_size), raw, data.draw(cuts_for(raw)))
    check_chunks(chunks, chunk_size)
    assert all(s == 1 for s, _d, _c in chunks)
    assert b"".join(d for _s, d, _c in chunks) == raw

    consumed = 0
    for _s, piece, cursor in chunks:
        consumed += len(piece)
        assert cursor == f"R|{consumed}"
        rest = feed_in_pieces(
            LogReader(tty=True, cursor=cursor, chunk_size=chunk_size), raw, data.draw(cuts_for(raw))
        )
        check_chunks(rest, chunk_size)
        assert b"".join(d for _s, d, _c in rest) == raw[consumed:]
        if rest:
            assert rest[-1][2] == f"R|{len(raw)}"
