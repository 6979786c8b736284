"""
Bounded output (csvc/store/retention.py), through the real store and its
threads, for both output stores: each container keeps at most its retention
(oldest whole chunks dropped first, counted), a project's containers keep at
most its output quota together (the biggest pays) without touching other
projects, and the counters, the reads and the disk agree, across a restart.
"""

import os
from datetime import datetime

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from zope.interface.verify import verifyObject

from csvc.store.db import Store, make_engine, upgrade
from csvc.store.models import containers, output_chunks
from csvc.store.output import FilesOutput, IOutputStore, RowsOutput

A = "0d7c2f9e-4a51-4b8e-9a7e-2d1f6c3b5a10"
B = "5b6e3a1c-2f4d-4e8a-b1c9-7d0e8f2a3b4c"
C = "9f1e2d3c-4b5a-4968-8776-655443322110"
D = "1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d"
KIB = 1024
MIB = 1024 * KIB


def make_store(tmp_path, kind, url=None, **kwargs):
    engine = make_engine(url or f"sqlite:///{tmp_path / 'csvc.sqlite'}")
    upgrade(engine)
    output_dir = str(tmp_path / "output") if kind == "files" else None
    store = Store(engine, reactor, output_dir=output_dir, **kwargs)
    if kind == "files":
        store.output.positions_interval = 0.0
    store.prepare_output()
    store.startService()
    return store


def add_container(store, uuid, project):
    with store.engine.begin() as conn:
        conn.execute(containers.insert().values(
            uuid=uuid, name=uuid[:8], project_id=project, image="i", status="running",
            created_at=datetime(2026, 1, 1), last_seq=0, log_cursor="",
        ))


@pytest.fixture(params=["files", "db"])
def kind(request):
    return request.param


@pytest_twisted.inlineCallbacks
def put(store, uuid, datas):
    """
    Store ``datas`` as the container's next chunks, one batch each (as the
    journal would when they come one by one), each committed.
    """
    row = yield store.get_container(uuid)
    seq = row["last_seq"]  # (each batch below is committed before the next)
    for data in datas:
        seq += 1
        yield store.append_output([(uuid, seq, 1 + seq % 2, data, f"C|{seq}|0")]).committed
        # (files: the punch is queued on the writer after the commit)
        files = getattr(store.output, "files", None)
        if files is not None:
            yield deferToThreadPool(reactor, files._writer, lambda: None)


@pytest_twisted.inlineCallbacks
def kept(store, uuid):
    chunks = yield store.read_output(uuid, 0, 1000)
    return [(seq, data) for seq, _stream, data in chunks]


@pytest_twisted.inlineCallbacks
def counters(store, uuid):
    row = yield store.get_container(uuid)
    return row["output_first"], row["output_bytes"], row["output_dropped"]


def chunk(n, fill):
    return bytes([fill]) * n


@pytest_twisted.inlineCallbacks
def test_both_kinds_of_output_store_are_one_interface(tmp_path, kind):
    """
    Files and rows are the two ``IOutputStore``s the store picks between
    (``--output-store``); every test here runs through both.
    """
    store = make_store(tmp_path, kind, output_retention=1000)
    try:
        assert type(store.output) is {"files": FilesOutput, "db": RowsOutput}[kind]
        assert verifyObject(IOutputStore, store.output)
        assert store.output_retention == store.output.retention == 1000
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_the_oldest_whole_chunks_go_past_the_retention(tmp_path, kind):
    store = make_store(tmp_path, kind, output_retention=1000)
    try:
        add_container(store, A, "p")
        datas = [chunk(300, i) for i in range(5)]
        yield put(store, A, datas[:3])
        assert (yield kept(store, A)) == [(1, datas[0]), (2, datas[1]), (3, datas[2])]
        assert (yield counters(store, A)) == (1, 900, 0)
        assert (yield store.output_start(A)) == (1, 0)
        yield put(store, A, datas[3:])
        # 1200 > 1000 after each of the last two: one oldest chunk each.
        assert (yield kept(store, A)) == [(3, datas[2]), (4, datas[3]), (5, datas[4])]
        assert (yield counters(store, A)) == (3, 900, 600)
        assert (yield store.output_start(A)) == (3, 600)
        # Reads from inside the dropped range start at the first chunk kept;
        # reading back from the end stops there too.
        assert [c[0] for c in (yield store.read_output(A, 1, 10))] == [3, 4, 5]
        assert [c[0] for c in (yield store.read_output(A, 0, 10, descending=True))] == [5, 4, 3]
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_a_chunk_bigger_than_the_retention_drops_everything_before_it(tmp_path, kind):
    store = make_store(tmp_path, kind, output_retention=500)
    try:
        add_container(store, A, "p")
        yield put(store, A, [chunk(200, 1), chunk(200, 2), chunk(600, 3)])
        # Whole chunks only: 1000 -> drop 1 (800) -> drop 2 (600) -> drop 3 (0).
        assert (yield kept(store, A)) == []
        assert (yield counters(store, A)) == (4, 0, 1000)
        yield put(store, A, [chunk(10, 4)])
        assert (yield kept(store, A)) == [(4, chunk(10, 4))]
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_counters_and_drops_survive_a_restart(tmp_path, kind):
    store = make_store(tmp_path, kind, output_retention=1000)
    datas = [chunk(300, i) for i in range(6)]
    try:
        add_container(store, A, "p")
        yield put(store, A, datas[:5])
    finally:
        yield store.stopService()
    store = make_store(tmp_path, kind, output_retention=1000)
    try:
        assert (yield counters(store, A)) == (3, 900, 600)
        assert (yield kept(store, A)) == [(3, datas[2]), (4, datas[3]), (5, datas[4])]
        yield put(store, A, datas[5:])
        assert (yield kept(store, A)) == [(4, datas[3]), (5, datas[4]), (6, datas[5])]
        assert (yield counters(store, A)) == (4, 900, 900)
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_a_project_at_its_quota_drops_its_biggest_oldest_and_no_other_projects(tmp_path, kind):
    piece = 256 * KIB
    store = make_store(tmp_path, kind, quota_defaults={"output": 1})
    try:
        for uuid, project in ((A, "p"), (B, "p"), (C, "q"), (D, "p")):
            add_container(store, uuid, project)
        yield put(store, A, [chunk(piece, i) for i in range(3)])
        yield put(store, C, [chunk(piece, 10 + i) for i in range(3)])
        assert (yield counters(store, A)) == (1, 3 * piece, 0)
        # B's second chunk takes p to 1.25 MiB: the biggest (A) loses its
        # oldest; B's third, to 1.25 MiB again: now B is the biggest.
        yield put(store, B, [chunk(piece, 20 + i) for i in range(3)])
        assert [seq for seq, _ in (yield kept(store, A))] == [2, 3]
        assert [seq for seq, _ in (yield kept(store, B))] == [2, 3]
        assert (yield counters(store, A)) == (2, 2 * piece, piece)
        assert (yield counters(store, B)) == (2, 2 * piece, piece)
        # A new container of the full project keeps its output: one of the
        # biggest pays (A and B keep as much; the uuid decides).
        yield put(store, D, [chunk(piece, 30)])
        assert [seq for seq, _ in (yield kept(store, D))] == [1]
        assert [seq for seq, _ in (yield kept(store, A))] == [3]
        assert [seq for seq, _ in (yield kept(store, B))] == [2, 3]
        limits, usage = yield store.quota_usage("p")
        assert limits["output"] == 1 and usage["output"] == 1.0
        # The other project was never touched.
        assert (yield kept(store, C)) == [(1 + i, chunk(piece, 10 + i)) for i in range(3)]
        assert (yield counters(store, C)) == (1, 3 * piece, 0)
        # Its own quota, raised for it alone: nothing more goes.
        yield store.set_quota("p", {"output": 2})
        yield put(store, B, [chunk(piece, 40)])
        assert [seq for seq, _ in (yield kept(store, B))] == [2, 3, 4]
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_unlimited_keeps_everything_and_still_counts(tmp_path, kind):
    store = make_store(tmp_path, kind, quota_defaults={"output": -1})
    try:
        add_container(store, A, "p")
        yield put(store, A, [chunk(256 * KIB, i) for i in range(8)])
        assert (yield counters(store, A)) == (1, 2 * MIB, 0)
        assert len((yield kept(store, A))) == 8
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_output_files_give_the_disk_space_back(tmp_path):
    store = make_store(tmp_path, "files", output_retention=MIB)
    try:
        add_container(store, A, "p")
        yield put(store, A, [os.urandom(256 * KIB) for _ in range(16)])
        out = os.path.join(str(tmp_path / "output"), A + ".out")
        stat = os.stat(out)
        # Positions stay what they were (the file keeps its size) ...
        assert stat.st_size == 4 * MIB
        # ... but only the kept MiB (and a block or so) takes disk space.
        assert stat.st_blocks * 512 <= MIB + 64 * KIB
        assert (yield counters(store, A)) == (13, MIB, 3 * MIB)
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_rows_dropped_by_the_retention_move_into_files_without_them(tmp_path):
    store = make_store(tmp_path, "db", output_retention=1000)
    datas = [chunk(300, i) for i in range(5)]
    try:
        add_container(store, A, "p")
        yield put(store, A, datas)
        with store.engine.begin() as conn:
            assert [r[0] for r in conn.execute(select(output_chunks.c.seq))] == [3, 4, 5]
    finally:
        yield store.stopService()
    store = make_store(tmp_path, "files", output_retention=1000)
    try:
        assert (yield kept(store, A)) == [(3, datas[2]), (4, datas[3]), (5, datas[4])]
        assert (yield store.output_start(A)) == (3, 600)
        assert (yield counters(store, A)) == (3, 900, 600)
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_a_deleted_container_leaves_nothing_to_punch(tmp_path):
    store = make_store(tmp_path, "files", output_retention=100)
    try:
        add_container(store, A, "p")
        yield put(store, A, [chunk(80, 1), chunk(80, 2)])
        yield store.delete_container(A)
        # A late punch (queued after the delete) creates no files again.
        yield store.output.files.drop_before(A, 2)
        assert os.listdir(str(tmp_path / "output")) == []
    finally:
        yield store.stopService()


def test_the_settings(tmp_path):
    from csvc import config

    settings = config.resolve({"data-dir": str(tmp_path)})
    assert settings["output-retention-mib"] == 1024
    assert config.quota_defaults(settings)["output"] == 10240
    settings = config.resolve({"data-dir": str(tmp_path), "output-retention-mib": "-1", "quota-output": "7"})
    assert settings["output-retention-mib"] == -1
    assert config.quota_defaults(settings)["output"] == 7
    for key, value in (("output-retention-mib", "-2"), ("output-retention-mib", "lots"), ("quota-output", "-5")):
        with pytest.raises(config.ConfigError, match=key):
            config.resolve({"data-dir": str(tmp_path), key: value})


def test_the_options(tmp_path):
    from csvc.server import Options

    options = Options()
    options.parseOptions(["--data-dir", str(tmp_path), "--output-retention-mib", "3", "--quota-output", "5"])
    assert options.settings["output-retention-mib"] == 3
    assert options.settings["quota-output"] == 5
