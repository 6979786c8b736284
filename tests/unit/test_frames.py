"""
Docker's multiplexed stream codec (csvc.stdio.frames).
"""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvc.stdio.frames import HEADER_SIZE, MAX_FRAME, FrameError, FrameParser, encode_frame


def test_encode_frame_layout():
    assert encode_frame(2, b"hello") == b"\x02\x00\x00\x00\x00\x00\x00\x05hello"
    assert encode_frame(1, b"") == b"\x01\x00\x00\x00\x00\x00\x00\x00"
    assert HEADER_SIZE == 8


def test_feed_whole_frames():
    parser = FrameParser()
    data = encode_frame(1, b"out") + encode_frame(2, b"err") + encode_frame(3, b"")
    assert parser.feed(data) == [(1, b"out"), (2, b"err"), (3, b"")]
    assert parser.pending == 0


def test_partial_frame_waits():
    parser = FrameParser()
    data = encode_frame(1, b"abcdef")
    assert parser.feed(data[:3]) == []
    assert parser.pending == 3
    assert parser.feed(data[3:10]) == []
    assert parser.pending == 10
    assert parser.feed(data[10:]) == [(1, b"abcdef")]
    assert parser.pending == 0


@pytest.mark.parametrize("stream", [4, 5, 255])
def test_invalid_stream_id(stream):
    with pytest.raises(FrameError, match=f"invalid stream id {stream}"):
        FrameParser().feed(struct.pack(">BxxxL", stream, 1) + b"x")


def test_invalid_stream_detected_from_header_alone():
    # The payload has not arrived yet: the header is enough to refuse it.
    with pytest.raises(FrameError):
        FrameParser().feed(struct.pack(">BxxxL", 4, 100))


def test_frame_over_max_refused_before_buffering():
    header = struct.pack(">BxxxL", 1, MAX_FRAME + 1)
    with pytest.raises(FrameError, match="exceeds"):
        FrameParser().feed(header)


def test_frame_of_exactly_max_accepted():
    parser = FrameParser(max_frame=16)
    assert parser.feed(encode_frame(1, b"x" * 16)) == [(1, b"x" * 16)]
    with pytest.raises(FrameError):
        FrameParser(max_frame=16).feed(encode_frame(1, b"x" * 17))


frames_strategy = st.lists(
    st.tuples(st.integers(0, 3), st.binary(max_size=200)), max_size=20
)


def split_stream(frames, data):
    """
    The frames encoded, and the encoding cut at arbitrary places.
    """
    stream = b"".join(encode_frame(s, p) for s, p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    return [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]


@given(frames=frames_strategy, data=st.data())
def test_roundtrip_arbitrary_splits(frames, data):
    parser = FrameParser()
    got = []
    for piece in split_stream(frames, data):
        got.extend(parser.feed(piece))
    assert got == frames
    assert parser.pending == 0


@given(frames=frames_strategy)
def test_roundtrip_byte_at_a_time(frames):
    stream = b"".join(encode_frame(s, p) for s, p in frames)
    parser = FrameParser()
    got = []
    for i in range(len(stream)):
        got.extend(parser.feed(stream[i:i + 1]))
    assert got == frames


@given(frames=frames_strategy, data=st.data())
def test_pieces_carry_every_payload_byte_in_order_under_arbitrary_splits(frames, data):
    parser = FrameParser()
    got = []
    for read in split_stream(frames, data):
        for s, piece in parser.pieces(read):
            assert len(piece) > 0
            got.append((s, bytes(piece)))
    # Consecutive pieces of one stream, merged, are the frames' payloads merged.
    def merged(items):
        out = []
        for s, payload in items:
            if not payload:
                continue
            if out and out[-1][0] == s:
                out[-1] = (s, out[-1][1] + payload)
            else:
                out.append((s, payload))
        return out

    assert merged(got) == merged(frames)


def test_pieces_are_views_of_the_data_not_copies():
    data = encode_frame(1, b"a" * 100) + encode_frame(2, b"b" * 50)[:20]
    parser = FrameParser()
    (one, first), (two, second) = parser.pieces(data)
    assert (one, two) == (1, 2)
    assert isinstance(first, memoryview) and first.obj is data
    assert bytes(first) == b"a" * 100 and bytes(second) == b"b" * 12
    assert [(s, bytes(p)) for s, p in parser.pieces(b"b" * 38)] == [(2, b"b" * 38)]


def test_pieces_refuse_a_bad_header_cut_across_reads():
    parser = FrameParser()
    header = struct.pack(">BxxxL", 7, 1)
    assert parser.pieces(header[:5]) == []
    with pytest.raises(FrameError, match="invalid stream id 7"):
        parser.pieces(header[5:])
