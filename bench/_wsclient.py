#!/usr/bin/env python
"""
The WebSocket side of the bench (not a benchmark itself): N attach sessions
in one process, on raw sockets (see _service.WSClient), run as a subprocess
so that the client has its own core.

    _wsclient.py --port P --token=T --project=X --mode MODE PATH [PATH ...]

Each PATH is one session (repeat a path for several sessions on one
container).  Once every handshake is done it prints ``ready T`` (T =
time.monotonic(), comparable across processes on Linux) on stdout, then:

- ``drain``: read every session until its status message (channel 3) or
  close; count output bytes; snapshot the per-session byte counts every
  ``--sample`` seconds; stop early after ``--duration`` seconds if given.
  Prints one JSON document at the end.
- ``idle``/``stall``: read nothing; wait for a line on stdin (or EOF), then
  close.  Prints ``{"closed": N}``.
"""

import argparse
import json
import selectors
import socket
import sys
import time

from _service import FrameParser, raise_nofile, ws_frame, ws_handshake


def connect_all(port, paths, headers, batch=64):
    socks = []
    rests = []
    for i in range(0, len(paths), batch):
        group = []
        for path in paths[i:i + batch]:
            s = socket.create_connection(("127.0.0.1", port), timeout=120)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            group.append((s, path))
        for s, path in group:
            rests.append(ws_handshake(s, "127.0.0.1", port, path, headers))
            socks.append(s)
    return socks, rests


def drain(socks, rests, sample, duration):
    n = len(socks)
    counts = [0] * n
    first = [None] * n
    last = [None] * n
    end = [None] * n
    status = [None] * n
    parsers = [FrameParser() for _ in range(n)]
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    open_ = n
    timeline = []
    t_start = time.monotonic()
    next_sample = t_start + sample

    def handle(i, frames):
        nonlocal open_
        for opcode, payload in frames:
            if opcode == 9:
                socks[i].sendall(ws_frame(payload, opcode=10))
            elif opcode == 8:
                if end[i] is None:
                    end[i] = time.monotonic()
                    open_ -= 1
                    sel.unregister(socks[i])
            elif isinstance(payload, tuple):
                last[i] = time.monotonic()
                if first[i] is None:
                    first[i] = last[i]
                counts[i] += payload[1] - 1
            elif payload:
                if payload[0] == 3:
                    status[i] = json.loads(payload[1:])
                    if end[i] is None:
                        end[i] = time.monotonic()
                        open_ -= 1
                        sel.unregister(socks[i])
                elif payload[0] in (1, 2):
                    last[i] = time.monotonic()
                    if first[i] is None:
                        first[i] = last[i]
                    counts[i] += len(payload) - 1

    for i, rest in enumerate(rests):
        if rest:
            handle(i, parsers[i].feed(rest))
    while open_ > 0:
        now = time.monotonic()
        if duration is not None and now - t_start >= duration:
            break
        if now >= next_sample:
            timeline.append([round(now, 4), list(counts)])
            next_sample += sample
        for key, _ in sel.select(timeout=max(0.0, min(0.05, next_sample - now))):
            i = key.data
            try:
                got = socks[i].recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                got = 0
            if not got:
                if end[i] is None:
                    end[i] = time.monotonic()
                    open_ -= 1
                    sel.unregister(socks[i])
                continue
            handle(i, parsers[i].feed(view[:got]))
    timeline.append([round(time.monotonic(), 4), list(counts)])
    for s in socks:
        s.close()
    return {"bytes": counts, "first": first, "last": last, "end": end, "status": status, "timeline": timeline}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--mode", choices=("drain", "idle", "stall"), default="drain")
    parser.add_argument("--sample", type=float, default=0.25)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    raise_nofile(len(args.paths) + 256)
    headers = {"X-Auth-Token": args.token, "X-Auth-Project-Id": args.project}
    socks, rests = connect_all(args.port, args.paths, headers)
    print(f"ready {time.monotonic():.6f}", flush=True)
    if args.mode == "drain":
        result = drain(socks, rests, args.sample, args.duration)
    else:
        sys.stdin.readline()
        for s in socks:
            s.close()
        result = {"closed": len(socks)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
