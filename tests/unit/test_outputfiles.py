"""
Output in append-only files (csvc/store/outputfiles.py): what is written is
read back exactly, replays replace, holes are refused, and the start lines the
files and the database up whichever of them is ahead.
"""

import ctypes
import mmap
import os

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet import reactor
from twisted.internet.task import Clock

from csvc.store import output, outputfiles
from csvc.store.db import Store, make_engine, upgrade
from csvc.store.models import containers, output_chunks
from csvc.store.outputfiles import ENTRY, OutputCorrupt, OutputFiles

U = "0d7c2f9e-4a51-4b8e-9a7e-2d1f6c3b5a10"
V = "5b6e3a1c-2f4d-4e8a-b1c9-7d0e8f2a3b4c"


@pytest.fixture
def files(tmp_path):
    return OutputFiles(str(tmp_path / "output"), Clock())


def write(files, u, first, datas, at=100.0):
    files.write_now([
        (u, seq, 1 + seq % 2, data, f"C|{seq}|0", at) for seq, data in enumerate(datas, first)
    ])


def read(files, u, *args, **kwargs):
    return files._thd_read(u, *args, readable=None, **{"limit": 64, "before_seq": None, "descending": False,
                                                          "with_time": False, **kwargs})


def test_read_back_in_order_and_in_reverse(files):
    datas = [os.urandom(n) for n in (1, 32768, 0 + 7, 5000)]
    write(files, U, 1, datas)
    assert read(files, U, 0) == [(seq, 1 + seq % 2, d) for seq, d in enumerate(datas, 1)]
    assert read(files, U, 2, limit=1) == [(3, 2, datas[2])]
    assert read(files, U, 0, before_seq=3) == [(1, 2, datas[0]), (2, 1, datas[1])]
    assert read(files, U, 0, limit=2, descending=True) == [(4, 1, datas[3]), (3, 2, datas[2])]
    assert read(files, U, 0, descending=True, before_seq=2) == [(1, 2, datas[0])]
    assert read(files, U, 0, limit=1, with_time=True) == [(1, 2, datas[0], 100.0)]
    assert read(files, U, 4) == []
    assert read(files, V, 0) == []


def test_appends_continue_where_the_last_ended(files):
    write(files, U, 1, [b"a", b"bb"])
    write(files, U, 3, [b"ccc"])
    assert [c[2] for c in read(files, U, 0)] == [b"a", b"bb", b"ccc"]
    assert os.path.getsize(os.path.join(files.root, U + ".out")) == 6
    assert os.path.getsize(os.path.join(files.root, U + ".idx")) == 3 * ENTRY.size


def test_a_replay_replaces_what_followed(files):
    """
    An agent that reconnects sends again from the last acknowledged chunk,
    maybe cut differently: the new chunks replace the old from there on.
    """
    write(files, U, 1, [b"one", b"two", b"three", b"four"])
    write(files, U, 3, [b"THREE-AND-FO"])
    assert [(c[0], c[2]) for c in read(files, U, 0)] == [(1, b"one"), (2, b"two"), (3, b"THREE-AND-FO")]
    assert os.path.getsize(os.path.join(files.root, U + ".out")) == len(b"onetwoTHREE-AND-FO")


def test_a_hole_is_refused(files):
    write(files, U, 1, [b"a"])
    with pytest.raises(OutputCorrupt):
        write(files, U, 3, [b"c"])
    with pytest.raises(OutputCorrupt):
        files.write_now([(U, 2, 1, b"b", "", 1.0), (U, 4, 1, b"d", "", 1.0)])
    assert [c[2] for c in read(files, U, 0)] == [b"a"]


def test_many_containers_past_the_open_files_limit(files, monkeypatch):
    monkeypatch.setattr(outputfiles, "MAX_OPEN", 3)
    uuids = [f"c{i}" for i in range(8)]
    for round_ in range(3):
        for u in uuids:
            write(files, u, round_ + 1, [f"{u}-{round_}".encode()])
    assert len(files._handles) <= 3
    for u in uuids:
        assert [c[2] for c in read(files, u, 0)] == [f"{u}-{r}".encode() for r in range(3)]


def resident(path):
    """
    For each page of the file at ``path``: is it in the page cache now
    (``mincore`` of a mapping of it)?
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        start = ctypes.c_char.from_buffer(mapped)
        vec = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
        assert libc.mincore(ctypes.addressof(start), size, vec) == 0, os.strerror(ctypes.get_errno())
        del start
        return [v & 1 for v in vec]
    finally:
        mapped.close()


def write_synced(files, u, datas):
    """
    Write ``datas`` one chunk at a time, each on disk before the next.
    """
    path = os.path.join(files.root, u + ".out")
    for seq, data in enumerate(datas, 1):
        write(files, u, seq, [data])
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def test_pages_behind_the_cache_size_are_dropped_from_the_page_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(outputfiles, "TRIM_STEP", 64 * 1024)
    files = OutputFiles(str(tmp_path / "output"), Clock(), cache_bytes=64 * 1024)
    datas = [os.urandom(64 * 1024) for _ in range(4)]
    path = write_synced(files, U, datas)
    pages = resident(path)
    per_chunk = 64 * 1024 // mmap.PAGESIZE
    # The newest 64 KiB stay; the written-back pages before them are gone
    # (each drop covers the range of the one before again, so a page that
    # was not yet on disk at one drop goes at the next).
    assert pages == [0] * 3 * per_chunk + [1] * per_chunk
    # Dropped from the cache, not from the file.
    assert [c[2] for c in read(files, U, 0)] == datas


def test_without_a_cache_size_the_page_cache_is_left_alone(tmp_path):
    files = OutputFiles(str(tmp_path / "output"), Clock(), cache_bytes=None)
    path = write_synced(files, U, [os.urandom(64 * 1024) for _ in range(4)])
    assert resident(path) == [1] * (4 * 64 * 1024 // mmap.PAGESIZE)


def test_a_rewind_brings_the_drops_back_with_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(outputfiles, "TRIM_STEP", 64 * 1024)
    files = OutputFiles(str(tmp_path / "output"), Clock(), cache_bytes=64 * 1024)
    write_synced(files, U, [os.urandom(64 * 1024) for _ in range(4)])
    assert files._handles[U].trimmed == 3 * 64 * 1024
    # A replay from seq 2 cuts the file back to one chunk.
    write(files, U, 2, [b"x"])
    assert files._handles[U].trimmed == 64 * 1024
    assert [c[2] for c in read(files, U, 1)] == [b"x"]


def test_readers_stop_at_what_this_process_wrote(files):
    write(files, U, 1, [b"a", b"b", b"c"])
    assert [c[0] for c in files._thd_read(U, 0, 64, None, False, False, 2)] == [1, 2]


def test_delete(files):
    write(files, U, 1, [b"a"])
    write(files, V, 1, [b"v"])
    files._thd_delete(U)
    assert read(files, U, 0) == []
    assert sorted(os.listdir(files.root)) == [V + ".idx", V + ".out"]
    # A container of the same uuid starts again from seq 1.
    write(files, U, 1, [b"again"])
    assert read(files, U, 0) == [(1, 2, b"again")]


def test_reconcile(files):
    write(files, U, 1, [b"a", b"b", b"c", b"d"])  # the database says 2: 3 and 4 were never acked
    write(files, V, 1, [b"x", b"y"])  # the database says 5: 3..5 lost with the power
    write(files, "gone", 1, [b"z"])  # deleted while the service was down
    behind = files.reconcile({U: 2, V: 5, "empty": 0, "lost": 3})
    assert behind == {V: (2, "C|2|0"), "lost": (0, "")}
    assert [c[2] for c in read(files, U, 0)] == [b"a", b"b"]
    assert os.path.getsize(os.path.join(files.root, U + ".out")) == 2
    assert [c[2] for c in read(files, V, 0)] == [b"x", b"y"]
    assert not os.path.exists(os.path.join(files.root, "gone.out"))
    # Writing goes on after the kept chunks.
    write(files, U, 3, [b"C"])
    assert [c[2] for c in read(files, U, 0)] == [b"a", b"b", b"C"]


def test_reconcile_drops_entries_whose_bytes_did_not_reach_the_disk(files):
    write(files, U, 1, [b"aaaa", b"bbbb"])
    with open(os.path.join(files.root, U + ".out"), "r+b") as f:
        f.truncate(6)
    assert files.reconcile({U: 2}) == {U: (1, "C|1|0")}
    assert [c[2] for c in read(files, U, 0)] == [b"aaaa"]


def test_not_a_uuid_is_refused(files):
    with pytest.raises(ValueError):
        files._paths("../etc/passwd")


# -- through the store ----------------------------------------------------------


def _store(tmp_path, output_dir):
    engine = make_engine(f"sqlite:///{tmp_path / 'csvc.sqlite'}")
    upgrade(engine)
    return Store(engine, reactor, output_dir=output_dir)


def _container(store, uuid):
    from datetime import datetime

    with store.engine.begin() as conn:
        conn.execute(containers.insert().values(
            uuid=uuid, name=uuid[:8], project_id="p", image="i", status="running",
            created_at=datetime(2026, 1, 1), last_seq=0, log_cursor="",
        ))


def test_the_start_moves_database_rows_into_files(tmp_path):
    """
    Output stored as rows (``output-store = db``, or before files existed) is
    moved into files at start, byte for byte, and the rows go.
    """
    store = _store(tmp_path, None)
    _container(store, U)
    chunks = [(U, seq, 1 + seq % 2, os.urandom(300 * seq), f"C|{seq}|0") for seq in range(1, 301)]
    store.run_sync(store.output.thd_append, chunks)

    moved = _store(tmp_path, str(tmp_path / "output"))
    moved.prepare_output()
    got = moved.output.files._thd_read(U, 0, 1000, None, False, False, None)
    assert got == [(seq, stream, data) for (_u, seq, stream, data, _c) in chunks]
    with moved.engine.begin() as conn:
        assert conn.execute(select(output_chunks)).first() is None
        row = conn.execute(select(containers.c.last_seq, containers.c.log_cursor)).one()
    assert tuple(row) == (300, "C|300|0")
    # The last chunk's entry carries the cursor to resume from.
    assert outputfiles._entry(os.open(os.path.join(str(tmp_path / "output"), U + ".idx"), os.O_RDONLY), 300)[4] == \
        "C|300|0"


def test_the_start_takes_the_database_back_to_what_the_files_have(tmp_path):
    store = _store(tmp_path, str(tmp_path / "output"))
    _container(store, U)
    write(store.output.files, U, 1, [b"a", b"b"])
    with store.engine.begin() as conn:
        conn.execute(containers.update().values(last_seq=9, log_cursor="C|9|0"))
    store.prepare_output()
    with store.engine.begin() as conn:
        row = conn.execute(select(containers.c.last_seq, containers.c.log_cursor)).one()
    assert tuple(row) == (2, "C|2|0")


@pytest_twisted.inlineCallbacks
def test_append_and_read_through_the_store_threads(tmp_path):
    store = _store(tmp_path, str(tmp_path / "output"))
    _container(store, U)
    store.startService()
    try:
        data = [os.urandom(32768) for _ in range(40)]
        yield store.append_output([(U, seq, 1, d, f"C|{seq * 32768}|0") for seq, d in enumerate(data[:20], 1)]).written
        last = store.append_output([(U, seq, 2, d, f"C|{seq * 32768}|0") for seq, d in enumerate(data[20:], 21)])
        yield last.written
        got = yield store.read_output(U, 0, 100)
        assert [c[2] for c in got] == data
        assert [c[1] for c in got] == [1] * 20 + [2] * 20
        # The positions are committed after the bytes are written.
        yield last.committed
        row = yield store.get_container(U)
        assert (row["last_seq"], row["log_cursor"]) == (40, f"C|{40 * 32768}|0")
        yield store.delete_container(U)
        assert not os.path.exists(os.path.join(str(tmp_path / "output"), U + ".out"))
        assert (yield store.read_output(U, 0, 100)) == []
    finally:
        store.stopService()


@pytest_twisted.inlineCallbacks
def test_positions_are_committed_after_coalesced_and_at_once_when_waited_for(tmp_path, monkeypatch):
    """
    Batches written in quick succession cost one commit of positions, not
    one each; someone waiting (an exit to record) has it committed at once.
    """
    store = _store(tmp_path, str(tmp_path / "output"))
    _container(store, U)
    _container(store, V)
    commits = []
    real = output.thd_set_positions

    def counted(conn, positions):
        commits.append(dict(positions))
        return real(conn, positions)

    monkeypatch.setattr(output, "thd_set_positions", counted)
    # (long enough that no machine, however slow, reaches it in this test:
    # what is held back is held back by rule, not by speed)
    store.output.positions_interval = 3600
    store.startService()
    try:
        first = store.append_output([(U, 1, 1, b"a", "C|1|0")])
        yield first.written
        # The first goes at once (none before it for positions_interval).
        yield first.committed
        assert commits == [{U: (1, "C|1|0")}]
        appended = []
        for seq in range(2, 6):
            appended.append(store.append_output(
                [(U, seq, 1, b"b", f"C|{seq}|0"), (V, seq - 1, 2, b"v", f"C|0|{seq - 1}")]))
            yield appended[-1].written
        assert len(commits) == 1  # held back, coalesced
        assert not any(a.committed.called for a in appended)
        assert (yield store.get_container(U))["last_seq"] == 1
        store.hasten_output()  # a waiter: committed now, not in an hour
        yield appended[-1].committed
        assert all(a.committed.called for a in appended)
        assert commits[1] == {U: (5, "C|5|0"), V: (4, "C|0|4")}
        assert len(commits) == 2
        assert (yield store.get_container(U))["last_seq"] == 5
        # Nothing left to commit: nothing done.
        store.hasten_output()
        assert len(commits) == 2
    finally:
        store.stopService()


@pytest_twisted.inlineCallbacks
def test_a_stop_commits_the_positions_still_waiting(tmp_path):
    store = _store(tmp_path, str(tmp_path / "output"))
    _container(store, U)
    store.output.positions_interval = 60.0
    store.startService()
    yield store.append_output([(U, 1, 1, b"a", "C|1|0")]).committed  # committed at once: the first
    held = store.append_output([(U, 2, 1, b"b", "C|2|0")])  # held back for 60 s
    yield held.written
    assert not held.committed.called
    yield store.stopService()
    with store.engine.begin() as conn:
        row = conn.execute(select(containers.c.last_seq, containers.c.log_cursor)).one()
    assert tuple(row) == (2, "C|2|0")
