#!/usr/bin/env python
"""
What a write into the page cache costs on this machine, by where its pages
come from: the system CPU seconds per GiB of writing files in chunks of
CHUNK_SIZE (256 KiB, an output chunk), as the output files are written.

    .venv/bin/python bench/page_cache.py [--gib N] [--rounds R]

Each round writes ``--gib`` GiB to a new file in a temporary directory on
the data disk (next to where the service keeps output).  Rounds come in
pairs: the first file of a pair is kept while the second is written, so
the second needs pages nobody used since the first was written; then both
are deleted, and the next pair may get back the pages just freed.  In a
virtual machine whose host backs guest memory on first touch, a page the
guest has never used costs far more than one it has (bench/relay_throughput
and attach_throughput's runs move with it).  Reported: every round's
system s/GiB; baseline = the cheapest round; ratio = the dearest / the
cheapest.
"""

import argparse
import json
import os
import resource
import shutil
import tempfile

from csvc.agent.commands import CHUNK_SIZE


def write_round(path, nbytes):
    data = b"\1" * CHUNK_SIZE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    try:
        for _ in range(nbytes // CHUNK_SIZE):
            os.write(fd, data)
    finally:
        os.close(fd)
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime - before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="GiB per round [1]")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, in pairs [6]")
    args = parser.parse_args(argv)
    nbytes = int(args.gib * (1 << 30))
    here = os.path.dirname(os.path.abspath(__file__))
    work = tempfile.mkdtemp(prefix="csvc-bench-pagecache-", dir=os.path.join(here, ".."))
    costs = []
    try:
        for i in range(args.rounds):
            path = os.path.join(work, f"round-{i}")
            costs.append(round(write_round(path, nbytes) / args.gib, 2))
            if i % 2 == 1:
                for j in (i - 1, i):
                    os.unlink(os.path.join(work, f"round-{j}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "bench": "page_cache",
        "gib_per_round": args.gib,
        "chunk": CHUNK_SIZE,
        "sys_s_per_GiB_rounds": costs,
        "baseline": {"cheapest_sys_s_per_GiB": min(costs)},
        "ratio": round(max(costs) / min(costs), 2) if min(costs) else None,
    }), flush=True)


if __name__ == "__main__":
    main()
