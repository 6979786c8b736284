#!/usr/bin/env python
"""
Echo latency: p50/p99 of a one-byte keystroke echoed by a TTY container
running ``cat`` (the terminal's echo), through csvc's WebSocket attach
relay against directly through a Docker engine attach socket, same engine.

    .venv/bin/python bench/echo_latency.py [--keys N] [--warmup W] [--floor]

Relay: ``POST /v1/containers`` ``{"command": ["cat"], "tty": true,
"interactive": true, "run": true}``, attach with ``stdin=true`` and
subprotocol ``channel.csvc.v1``; a keystroke is a channel-0 message of one
byte, timed until the channel-1 message that echoes it.  Direct: the Docker
SDK creates and starts the same container (``tty``, ``stdin_open``, log
driver ``local``), and a raw engine attach socket (``POST
/containers/ID/attach?stream=1&stdin=1&stdout=1``, what the SDK's
``attach_socket`` opens) carries the byte both ways.  One keystroke at a
time, 2 ms apart; after W warm-up keystrokes, N timed ones each, the two
ways taking turns key by key (both attached all along), so that both see
the same spells of a busy machine.  N is 2,000 by default: the p99 of 300
was the third-worst keystroke, and moved by a millisecond between runs.
ratio = relay p99 / direct p99; ``added_p99_ms`` = relay p99 - direct p99.

``--floor`` adds four more ``cat`` containers reached the direct way through
one and through two copying processes chained in front of the engine's
socket, socat (C) and bench/_twisted_hop.py (Python on Twisted)
(bench/_service.py ``Hops``), their keys taking turns with the others: what
hops that only copy add (``floor``), in C and on csvc's own stack.
"""

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time

import docker

from _service import (
    DOCKER_SOCK, IMAGE, LOG_CONFIG, BenchError, Hops, Service, WSClient, docker_hijack, make_progress,
    parse_args, percentile,
)

progress = make_progress("echo_latency")


#: Keystrokes one terminal line takes: the keys are never followed by a
#: return, so that no line of ``cat``'s output comes back to be mistaken for
#: an echo; a terminal in canonical mode holds 4,095 characters of a line.
MAX_KEYS = 4000


def relay_keys(client, count, start=0):
    times = []
    for i in range(start, start + count):
        key = b"abcdefghij"[i % 10:i % 10 + 1]
        t0 = time.perf_counter()
        client.send_channel(0, key)
        while True:
            msg = client.recv()
            if msg is None:
                raise BenchError("relay session closed during the echo test")
            channel, body = msg
            if channel == 1 and key in body:
                break
            if channel == 3:
                raise BenchError(f"status during the echo test: {body!r}")
        times.append(time.perf_counter() - t0)
        time.sleep(0.002)
    return times


def direct_keys(sock, count, start=0):
    times = []
    sock.setblocking(True)
    for i in range(start, start + count):
        key = b"abcdefghij"[i % 10:i % 10 + 1]
        t0 = time.perf_counter()
        sock.sendall(key)
        got = b""
        while key not in got:
            data = sock.recv(4096)
            if not data:
                raise BenchError("engine attach closed during the echo test")
            got += data
        times.append(time.perf_counter() - t0)
        time.sleep(0.002)
    return times


def summary(times):
    ms = [t * 1000 for t in times]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.mean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=2000, help="timed keystrokes each way [2000]")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up keystrokes [30]")
    parser.add_argument("--floor", action="store_true",
                        help="also keystrokes through one and two socat and Twisted processes (floor)")
    args = parse_args(parser, argv, keys=20, warmup=5)
    if args.warmup + args.keys > MAX_KEYS:
        parser.error(f"--warmup plus --keys must be at most {MAX_KEYS} (one terminal line)")

    data_dir = tempfile.mkdtemp(prefix="csvc-bench-echo-")
    dclient = docker.from_env()
    dclient.images.get(IMAGE)
    service = Service(data_dir, progress)
    failed = True
    cids = []
    uuid = None
    chains = contextlib.ExitStack()
    api = dclient.api

    def direct_socket(path):
        # A container of its own: every attach sees all of its output.
        cid = api.create_container(
            IMAGE, command=["cat"], tty=True, stdin_open=True,
            host_config=api.create_host_config(log_config=LOG_CONFIG),
        )["Id"]
        cids.append(cid)
        api.start(cid)
        sock, _rest = docker_hijack(cid, stdin=True, stdout=True, stderr=True, path=path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        direct_keys(sock, args.warmup)
        return sock

    try:
        service.start()
        # Direct.
        sock = direct_socket(DOCKER_SOCK)
        floor_socks = {}
        for kind in Hops.KINDS if args.floor else ():
            for count in (1, 2):
                hops = chains.enter_context(Hops(kind, count, data_dir))
                floor_socks[hops.name] = direct_socket(hops.path)
        # Relay.
        uuid = service.create({"command": ["cat"], "tty": True, "interactive": True, "run": True})
        service.wait_status(uuid, ("running",))
        ws = WSClient(service.api_port, service.attach_path(uuid, stdin=True), service.auth_headers())
        time.sleep(0.5)
        relay_keys(ws, args.warmup)
        direct, relay = [], []
        floor = {name: [] for name in floor_socks}
        for i in range(args.warmup, args.warmup + args.keys):
            direct += direct_keys(sock, 1, i)
            relay += relay_keys(ws, 1, i)
            for name, floor_sock in floor_socks.items():
                floor[name] += direct_keys(floor_sock, 1, i)
        sock.close()
        for floor_sock in floor_socks.values():
            floor_sock.close()
        ws.close()
        progress(f"direct: {summary(direct)}")
        progress(f"relay: {summary(relay)}")
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc!r}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        if uuid is not None:
            try:
                service.delete(uuid)
            except Exception:
                pass
        for cid in cids:
            api.remove_container(cid, force=True)
        chains.close()
        service.stop()
        dclient.close()
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    r, d = summary(relay), summary(direct)
    result = {
        "bench": "echo_latency",
        "keys": args.keys,
        "relay": r,
        "added_p50_ms": round(r["p50_ms"] - d["p50_ms"], 3),
        "added_p99_ms": round(r["p99_ms"] - d["p99_ms"], 3),
        "baseline": {"direct_docker_attach": d},
        "ratio": round(r["p99_ms"] / d["p99_ms"], 3),
    }
    if floor:
        result["floor"] = {}
        for name, times in floor.items():
            f = summary(times)
            result["floor"][name] = dict(
                f, added_p50_ms=round(f["p50_ms"] - d["p50_ms"], 3), added_p99_ms=round(f["p99_ms"] - d["p99_ms"], 3)
            )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
