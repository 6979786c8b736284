#!/usr/bin/env python
"""
What writing container output into the page cache costs on this machine,
with and without dropping the pages behind each container's newest output
(csvc/store/outputfiles.py, ``output-cache``): system CPU seconds per GiB
written through ``OutputFiles.write_now`` (the writer thread's code) in
chunks of CHUNK_SIZE (256 KiB), batches of 16 chunks, as the journal does.

    .venv/bin/python bench/page_cache.py [--gib N] [--rounds R]

Each round writes ``--gib`` GiB of one container's output into a new
output directory on the data disk (next to where the service keeps output),
kept until the end, as the service keeps a container's output until it is
deleted.  Rounds alternate between the two ways: ``kept`` (the
kernel keeps every page, ``output-cache = -1``) and ``dropped`` (the
default: pages more than 32 MiB behind the end are dropped as writing goes
on).  In a virtual machine whose host backs guest memory on first touch and
takes freed memory back (virtio_balloon free page reporting), a page the
guest has not used lately costs far more than one it just freed, and the
dropping makes the writes reuse their own pages.  Reported: each round's
system s/GiB and the median of each way; baseline = kept; ratio = kept
median / dropped median (how many times dearer keeping is).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile

from twisted.internet.task import Clock

from _service import parse_args

from csvc.wire.commands import CHUNK_SIZE
from csvc.store.outputfiles import CACHE_BYTES, OutputFiles

BATCH = 16
UUID = "0d7c2f9e-4a51-4b8e-9a7e-2d1f6c3b5a10"


def write_round(root, nbytes, cache_bytes):
    files = OutputFiles(root, Clock(), cache_bytes)
    data = b"\1" * CHUNK_SIZE
    chunks = nbytes // CHUNK_SIZE
    before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    try:
        for first in range(1, chunks + 1, BATCH):
            files.write_now([
                (UUID, seq, 1, data, f"C|{seq * CHUNK_SIZE}|0", 0.0)
                for seq in range(first, min(first + BATCH, chunks + 1))
            ])
    finally:
        files.stop()
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime - before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="GiB per round [1]")
    parser.add_argument("--rounds", type=int, default=8, help="rounds, alternating kept/dropped [8]")
    args = parse_args(parser, argv, gib=0.01, rounds=2)
    nbytes = int(args.gib * (1 << 30))
    here = os.path.dirname(os.path.abspath(__file__))
    work = tempfile.mkdtemp(prefix="csvc-bench-pagecache-", dir=os.path.join(here, ".."))
    costs = {"kept": [], "dropped": []}
    try:
        for i in range(args.rounds):
            way = "kept" if i % 2 == 0 else "dropped"
            root = os.path.join(work, f"round-{i}")
            cost = write_round(root, nbytes, None if way == "kept" else CACHE_BYTES)
            costs[way].append(round(cost / args.gib, 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kept, dropped = (round(statistics.median(costs[way]), 2) for way in ("kept", "dropped"))
    print(json.dumps({
        "bench": "page_cache",
        "gib_per_round": args.gib,
        "chunk": CHUNK_SIZE,
        "output_cache_bytes": CACHE_BYTES,
        "sys_s_per_GiB_rounds": costs,
        "dropped_sys_s_per_GiB": dropped,
        "baseline": {"kept_sys_s_per_GiB": kept},
        "ratio": round(kept / dropped, 2) if dropped else None,
    }), flush=True)


if __name__ == "__main__":
    main()
