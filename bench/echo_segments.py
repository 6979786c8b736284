#!/usr/bin/env python
"""
Echo segments: where a keystroke's time goes inside the relay's processes.
For each process on the echo's path, the time from the system call that
reads the keystroke (or its echo) to the one that sends it on: the
control plane's and the agent's own work per hop, against the same for two
copy-only Twisted hops (bench/_twisted_hop.py) in front of the engine.

    .venv/bin/python bench/echo_segments.py [--keys N]

bench/echo_latency.py measures the whole echo, and its p99 moves by half a
millisecond between runs on this machine; these segments are the part of
it that is csvc's own code, measured to the microsecond, so that a change
to the hot path can be judged by one run (docs/benchmarks.md, ninth
session).  How: ``perf record -k mono`` of the syscall tracepoints
(``raw_syscalls:sys_enter``/``sys_exit``) on the control plane, the agent
and the hops while N keystrokes go through each way in turn, 2 ms apart (a
``cat`` TTY container each, as echo_latency's); a segment runs from the
exit of a read that returned bytes to the entry of the next send on the
same thread, with no wait in between.  In each process the two kinds of
segment (toward the engine, back to the client) are told apart by which
comes first after the client sent the key.  The tracing adds about a
microsecond per system call to both sides.

Figures are medians in microseconds: ``relay`` has the control plane's
``cp_key`` (WebSocket frame in, Input box out) and ``cp_echo`` (Output box
in, frame out), the agent's ``agent_key`` (Input in, write to the engine)
and ``agent_echo`` (engine read, Output out); ``baseline.twisted_2_hops``
the same four for the hops (``hop1`` next to the client).  ``ratio`` = the
relay's sum over the hops' sum.  Needs ``perf`` (Debian's linux-perf) and
root.
"""

import argparse
import bisect
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import docker

from _service import (
    IMAGE, LOG_CONFIG, BenchError, Hops, Service, WSClient, child_pids, docker_hijack, make_progress,
)
from echo_latency import MAX_KEYS, direct_keys, relay_keys

progress = make_progress("echo_segments")

#: x86_64 system call numbers: what reads bytes, what sends them, what waits.
READS = {0: "read", 45: "recvfrom", 47: "recvmsg"}
SENDS = {1: "write", 44: "sendto", 46: "sendmsg"}
WAITS = {7, 23, 232, 270, 281}  # poll, select, epoll_wait, pselect6, epoll_pwait

_LINE = re.compile(r"\s*(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit):\s+NR (\d+) (.*)")


def parse(text):
    """
    perf script lines -> {tid: [(t, "enter"|"exit", nr, rest)]}.
    """
    events = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            events.setdefault(int(m[1]), []).append((float(m[2]), m[3], int(m[4]), m[5]))
    return events


def segments(events):
    """
    One thread's segments: ``{(read fd, send fd): [(start, seconds)]}``.
    """
    found = {}
    fd = pending = None
    for t, kind, nr, rest in events:
        if kind == "enter":
            if nr in READS or nr in SENDS:
                try:
                    this_fd = int(rest.strip("()").split(",")[0], 16)
                except ValueError:
                    this_fd = None
            if nr in READS:
                fd = this_fd
            elif nr in SENDS and pending is not None:
                start, read_fd = pending
                found.setdefault((read_fd, this_fd), []).append((start, t - start))
                pending = None
            elif nr in WAITS:
                pending = None
        elif nr in READS:
            try:
                got = int(rest.rsplit("=", 1)[1])
            except (IndexError, ValueError):
                got = 0
            if got > 0 and pending is None:
                pending = (t, fd)
    return found


def classify(pid_events, sends, count):
    """
    A process's two segments per key, as lists of seconds: toward the
    engine (the kind that starts soonest after a key's send) and back to
    the client (the kind that sends where the first one read: the client's
    connection).  Other kinds (the control plane answering an Output once
    it is written, say) are left out.
    """
    found = {}
    for events in pid_events:
        for key, segs in segments(events).items():
            found.setdefault(key, []).extend(segs)
    busy = {key: segs for key, segs in found.items() if len(segs) >= count // 2}

    def delay(segs):
        # Median time from the key's send to the segment's start.
        gaps = []
        for start, _length in segs:
            i = bisect.bisect_right(sends, start) - 1
            if i >= 0:
                gaps.append(start - sends[i])
        return statistics.median(gaps) if gaps else float("inf")

    if not busy:
        raise BenchError(f"no segment seen once per key: {sorted(len(s) for s in found.values())}")
    toward = min(busy, key=lambda key: delay(busy[key]))
    back = [key for key in busy if key[1] == toward[0] and key != toward]
    if not back:
        raise BenchError(f"no segment sends back to fd {toward[0]}: {sorted(busy)}")
    back = max(back, key=lambda key: len(busy[key]))
    return [length for _start, length in busy[toward]], [length for _start, length in busy[back]]


def figures(lengths):
    us = sorted(x * 1e6 for x in lengths)
    return {"p50_us": round(statistics.median(us), 1), "p90_us": round(us[int(len(us) * 0.9)], 1), "n": len(us)}


def threads_of(pid):
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000, help="timed keystrokes each way [1000]")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up keystrokes [50]")
    args = parser.parse_args(argv)
    if args.warmup + args.keys > MAX_KEYS:
        parser.error(f"--warmup plus --keys must be at most {MAX_KEYS} (one terminal line)")
    if shutil.which("perf") is None:
        progress("perf is not installed (Debian: apt-get install linux-perf)")
        raise BenchError("perf is not installed")

    data_dir = tempfile.mkdtemp(prefix="csvc-bench-segments-")
    dclient = docker.from_env()
    dclient.images.get(IMAGE)
    api = dclient.api
    service = Service(data_dir, progress)
    perf_data = os.path.join(data_dir, "perf.data")
    failed = True
    cid = uuid = None
    with contextlib.ExitStack() as stack:
        try:
            service.start()
            hops = stack.enter_context(Hops("twisted", 2, data_dir))
            cid = api.create_container(
                IMAGE, command=["cat"], tty=True, stdin_open=True,
                host_config=api.create_host_config(log_config=LOG_CONFIG),
            )["Id"]
            api.start(cid)
            sock, _rest = docker_hijack(cid, stdin=True, stdout=True, stderr=True, path=hops.path)
            direct_keys(sock, args.warmup)
            uuid = service.create({"command": ["cat"], "tty": True, "interactive": True, "run": True})
            service.wait_status(uuid, ("running",))
            ws = WSClient(service.api_port, service.attach_path(uuid, stdin=True), service.auth_headers())
            time.sleep(0.5)
            relay_keys(ws, args.warmup)
            agents = child_pids(service.pid)
            if len(agents) != 1:
                raise BenchError(f"expected one local agent under the service, found {agents}")
            pids = {"cp": service.pid, "agent": agents[0], "hop1": hops.procs[1].pid, "hop2": hops.procs[0].pid}
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-k", "mono", "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit",
                 "-p", ",".join(str(p) for p in pids.values()), "-o", perf_data],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(1.5)
            relay_sends, hop_sends, relay_times, hop_times = [], [], [], []
            for i in range(args.warmup, args.warmup + args.keys):
                relay_sends.append(time.monotonic())
                relay_times += relay_keys(ws, 1, i)
                hop_sends.append(time.monotonic())
                hop_times += direct_keys(sock, 1, i)
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
            # Every thread of each process (the relay's segments are on the
            # reactor's thread; the others have none), read while they run.
            tasks = {name: set(threads_of(pid)) for name, pid in pids.items()}
            ws.close()
            sock.close()
            script = subprocess.run(
                ["perf", "script", "-i", perf_data, "-F", "tid,time,event,trace"],
                capture_output=True, text=True, check=True,
            ).stdout
            failed = False
        except BaseException as exc:
            progress(f"FAILED: {exc!r}")
            progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
            raise
        finally:
            if uuid is not None:
                with contextlib.suppress(Exception):
                    service.delete(uuid)
            if cid is not None:
                api.remove_container(cid, force=True)
            stack.close()
            service.stop()
            dclient.close()
            if failed:
                progress(f"temp dir kept: {data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)

    events = parse(script)
    by_pid = {name: [events[tid] for tid in sorted(tids) if tid in events] for name, tids in tasks.items()}
    n = args.keys
    cp_key, cp_echo = classify(by_pid["cp"], relay_sends, n)
    agent_key, agent_echo = classify(by_pid["agent"], relay_sends, n)
    hop1_key, hop1_echo = classify(by_pid["hop1"], hop_sends, n)
    hop2_key, hop2_echo = classify(by_pid["hop2"], hop_sends, n)
    relay = {"cp_key": figures(cp_key), "agent_key": figures(agent_key),
             "agent_echo": figures(agent_echo), "cp_echo": figures(cp_echo)}
    hops_fig = {"hop1_key": figures(hop1_key), "hop2_key": figures(hop2_key),
                "hop2_echo": figures(hop2_echo), "hop1_echo": figures(hop1_echo)}
    relay_total = sum(f["p50_us"] for f in relay.values())
    hops_total = sum(f["p50_us"] for f in hops_fig.values())
    result = {
        "bench": "echo_segments",
        "keys": n,
        "relay": dict(relay, total_p50_us=round(relay_total, 1),
                      echo_p50_ms=round(statistics.median(relay_times) * 1000, 3)),
        "baseline": {"twisted_2_hops": dict(hops_fig, total_p50_us=round(hops_total, 1),
                                            echo_p50_ms=round(statistics.median(hop_times) * 1000, 3))},
        "ratio": round(relay_total / hops_total, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
