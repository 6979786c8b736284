#!/usr/bin/env python
"""
Output persistence alone: MB/s of the output files (csvc/store/outputfiles.py,
the default) against output as SQLite rows (``output-store = "db"``), the
same chunks in the same batches, no network and no reactor.

    .venv/bin/python bench/output_store.py [--bytes N] [--chunk C]

Chunks of ``--chunk`` bytes (CHUNK_SIZE) of random data, in batches of
``Journal.max_batch_bytes`` (4 MiB, the journal's group commit), written
through the store's own units of work on the calling thread: files with
``OutputFiles.write_now`` plus the commit of the positions
(``csvc.store.output.thd_set_positions``), rows with ``RowsOutput.thd_append``, each
into a fresh SQLite store (WAL, synchronous=NORMAL, as the service opens it)
in a temporary directory.  Neither fsyncs per batch (see outputfiles.py).
ratio = files MB/s / rows MB/s.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import datetime

from twisted.internet.task import Clock

from _service import parse_args

from csvc.wire.commands import CHUNK_SIZE
from csvc.stdio.journal import Journal
from csvc.store import output
from csvc.store.db import Store, make_engine, upgrade
from csvc.store.models import containers


def fresh_store(data_dir, output_dir):
    engine = make_engine("sqlite:///" + os.path.join(data_dir, "csvc.sqlite"))
    upgrade(engine)
    store = Store(engine, Clock(), output_dir=output_dir)
    with engine.begin() as conn:
        conn.execute(containers.insert().values(
            uuid="bench", name="bench", project_id="bench", image="x", status="running",
            created_at=datetime(2026, 1, 1), last_seq=0, log_cursor="",
        ))
    return store


def batches(nbytes, chunk):
    data = os.urandom(chunk)
    per = max(1, Journal.max_batch_bytes // chunk)
    total = nbytes // chunk
    seq = 0
    while seq < total:
        batch = []
        for _ in range(min(per, total - seq)):
            seq += 1
            batch.append(("bench", seq, 1, data, f"C|{seq * chunk}|0"))
        yield batch


def files_mbps(data_dir, nbytes, chunk):
    store = fresh_store(data_dir, os.path.join(data_dir, "output"))
    t = time.perf_counter()
    for batch in batches(nbytes, chunk):
        store.output.files.write_now([c + (0.0,) for c in batch])
        store.run_sync(output.thd_set_positions, {"bench": (batch[-1][1], batch[-1][4])})
    elapsed = time.perf_counter() - t
    store.output.files.stop()
    store.engine.dispose()
    return nbytes / elapsed / 1e6


def rows_mbps(data_dir, nbytes, chunk):
    store = fresh_store(data_dir, None)
    t = time.perf_counter()
    for batch in batches(nbytes, chunk):
        store.run_sync(store.output.thd_append, batch)
    elapsed = time.perf_counter() - t
    store.engine.dispose()
    return nbytes / elapsed / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=256 * 1024 * 1024, help="bytes written [256 MiB]")
    parser.add_argument("--chunk", type=int, default=CHUNK_SIZE, help=f"chunk size [{CHUNK_SIZE}]")
    args = parse_args(parser, argv, bytes=4 * 1024 * 1024)
    figures = {}
    for name, measure in (("files", files_mbps), ("rows", rows_mbps)):
        data_dir = tempfile.mkdtemp(prefix=f"csvc-bench-output-{name}-")
        try:
            figures[name] = measure(data_dir, args.bytes, args.chunk)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps({
        "bench": "output_store",
        "bytes": args.bytes,
        "chunk": args.chunk,
        "files_MBps": round(figures["files"], 1),
        "baseline": {"sqlite_rows_MBps": round(figures["rows"], 1)},
        "ratio": round(figures["files"] / figures["rows"], 2),
    }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
