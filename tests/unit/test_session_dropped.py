"""
An attach session behind the live tail when the retention policy dropped
the chunks it would read next (csvc/store/retention.py): it goes on from the
first chunk kept instead of reading the same batch for ever.
"""

from tests.unit.test_session import setup


def test_a_session_behind_skips_what_the_retention_dropped():
    store, journal, sink, session = setup(limit=64 * 1024)
    session.start()
    session.pauseProducing()
    for seq in range(1, 11):
        journal.append("c", seq, 1, bytes([seq]) * 32 * 1024, "")
    assert session.behind
    # Chunks 3 to 6 were dropped from the store while the client was paused
    # (the queue kept chunks 1 and 2).
    for seq in range(3, 7):
        del store.chunks[seq]
    reads = store.reads
    session.resumeProducing()
    assert sink.data[1] == b"".join(bytes([seq]) * 32 * 1024 for seq in (1, 2, 7, 8, 9, 10))
    assert store.reads - reads < 5
    assert not session.behind
    journal.append("c", 11, 1, b"live", "")
    assert sink.data[1].endswith(b"live")
