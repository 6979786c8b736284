"""
Finding where the last N lines begin, newest chunk first (csvc.stdio.tail).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvc.stdio.tail import TailFinder


def reference_start(output, lines):
    """
    The offset in ``output`` where its last ``lines`` lines begin; 0 when it
    has no more than that.  A final newline ends the last line rather than
    starting another.
    """
    body = output[:-1] if output.endswith(b"\n") else output
    starts = [0] + [i + 1 for i, byte in enumerate(body) if byte == ord("\n")]
    if len(starts) <= lines:
        return 0
    return starts[-lines]


def run_finder(chunks, lines):
    """
    Feed ``chunks`` (oldest first, numbered from 1) newest first; the
    answer as an offset into their concatenation.
    """
    finder = TailFinder(lines)
    for seq in range(len(chunks), 0, -1):
        found = finder.feed(seq, chunks[seq - 1])
        if found is not None:
            found_seq, offset = found
            assert 1 <= found_seq <= len(chunks)
            assert 0 <= offset <= len(chunks[found_seq - 1])
            return sum(len(c) for c in chunks[: found_seq - 1]) + offset
    return 0


def test_needs_one_line():
    with pytest.raises(ValueError):
        TailFinder(0)


def test_last_line_of_one_chunk():
    assert TailFinder(1).feed(7, b"a\nb\nc\n") == (7, 4)
    assert TailFinder(1).feed(7, b"a\nb\nc") == (7, 4)


def test_last_two_lines():
    assert TailFinder(2).feed(3, b"a\nbb\nccc\n") == (3, 2)


def test_fewer_lines_than_asked_needs_more_chunks():
    finder = TailFinder(5)
    assert finder.feed(2, b"b\nc\n") is None
    assert finder.feed(1, b"a\n") is None


def test_lines_spanning_chunks():
    finder = TailFinder(2)
    assert finder.feed(3, b"d\n") is None
    assert finder.feed(2, b"xx\ncc") is None
    assert finder.feed(1, b"a\nbb") == (1, 2)


def test_final_newline_only_in_newest_chunk():
    # The newline closing chunk 1 is not final: it ends line "a".
    finder = TailFinder(1)
    assert finder.feed(2, b"b") is None
    assert finder.feed(1, b"a\n") == (1, 2)


def test_empty_newest_chunks_skipped():
    finder = TailFinder(1)
    assert finder.feed(3, b"") is None
    assert finder.feed(2, b"x\n") is None
    assert finder.feed(1, b"a\n") == (1, 2)


def test_blank_lines_count():
    assert TailFinder(2).feed(1, b"a\n\n\n") == (1, 2)


@st.composite
def split_output(draw):
    output = draw(st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\n\n", b"\x00"]), max_size=30).map(b"".join))
    cuts = sorted(draw(st.lists(st.integers(0, len(output)), max_size=8)))
    chunks, previous = [], 0
    for cut in cuts + [len(output)]:
        chunks.append(output[previous:cut])
        previous = cut
    return output, chunks


@settings(max_examples=500)
@given(split=split_output(), lines=st.integers(1, 8))
def test_matches_reference(split, lines):
    output, chunks = split
    assert run_finder(chunks, lines) == reference_start(output, lines)
