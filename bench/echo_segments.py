#!/usr/bin/env python
"""
Echo segments: where a keystroke's time goes inside the relay's processes.
For each process on the echo's path, the time from the system call that
reads the keystroke (or its echo) to the one that sends it on: the
control plane's and the agent's own work per hop, against the same for two
copy-only Twisted hops (bench/_twisted_hop.py) in front of the engine.

    .venv/bin/python bench/echo_segments.py [--keys N] [--against CHECKOUT]

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
comes first after the client sent the key.  The tracing slows every
system call, csvc's and the hops' alike (not measured apart).

Figures are medians in microseconds: ``relay`` has the control plane's
``cp_key`` (WebSocket frame in, Input box out) and ``cp_echo`` (Output box
in, frame out), the agent's ``agent_key`` (Input in, write to the engine)
and ``agent_echo`` (engine read, Output out); ``baseline.twisted_2_hops``
the same four for the hops (``hop1`` next to the client).  ``ratio`` = the
relay's sum over the hops' sum.  Needs ``perf`` (Debian's linux-perf) and
root.

``--against CHECKOUT`` runs a second service from another checkout (a git
worktree of the commit to compare with), its keys taking turns with this
checkout's and the hops', and reports it as ``against``: an A/B in one run,
both sides seeing the same machine.  The ways take turns in rotation, each
in each place, none twice in a row; two services of one checkout (an A/A)
came out within 3-4% of each other in total.
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

import _service
from _service import (
    IMAGE, LOG_CONFIG, BenchError, Hops, Service, WSClient, child_pids, docker_hijack, make_progress,
    parse_args,
)
from echo_latency import MAX_KEYS, direct_keys, relay_keys

progress = make_progress("echo_segments")

#: x86_64 system call numbers: what reads bytes (read, recvfrom, recvmsg),
#: what sends them (write, sendto, sendmsg), what waits (poll, select,
#: epoll_wait, pselect6, epoll_pwait).
READS = {0, 45, 47}
SENDS = {1, 44, 46}
WAITS = {7, 23, 232, 270, 281}

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


class Way:
    """
    One way keys take to a ``cat`` TTY container.  ``pids`` (set by
    ``open``) names the processes whose segments count, in the order the
    key meets them.
    """

    def __init__(self):
        self.sends, self.times = [], []
        self.pids = {}

    def key(self, i):
        self.sends.append(time.monotonic())
        self.times += self._keys(1, i)

    def figures(self, by_tid, tasks, n):
        """
        Each process's segment toward the engine (``NAME_key``), in the
        key's order, then back (``NAME_echo``), in the echo's.
        """
        toward, back = {}, {}
        for name in self.pids:
            key, echo = classify([by_tid[t] for t in tasks[name] if t in by_tid], self.sends, n)
            toward[f"{name}_key"], back[f"{name}_echo"] = figures(key), figures(echo)
        segs = dict(toward, **dict(reversed(list(back.items()))))
        total = round(sum(f["p50_us"] for f in segs.values()), 1)
        return dict(segs, total_p50_us=total, echo_p50_ms=round(statistics.median(self.times) * 1000, 3))


class RelayWay(Way):
    """
    One service's relay: the control plane (``cp``), then its agent.
    """

    def __init__(self, service):
        super().__init__()
        self.service = service
        self.uuid = self.ws = None

    def open(self, warmup):
        self.uuid = self.service.create({"command": ["cat"], "tty": True, "interactive": True, "run": True})
        self.service.wait_status(self.uuid, ("running",))
        self.ws = WSClient(self.service.api_port, self.service.attach_path(self.uuid, stdin=True),
                           self.service.auth_headers())
        time.sleep(0.5)
        relay_keys(self.ws, warmup)
        agents = child_pids(self.service.pid)
        if len(agents) != 1:
            raise BenchError(f"expected one local agent under the service, found {agents}")
        self.pids = {"cp": self.service.pid, "agent": agents[0]}

    def _keys(self, count, start):
        return relay_keys(self.ws, count, start)

    def close(self):
        if self.ws is not None:
            self.ws.close()
        if self.uuid is not None:
            with contextlib.suppress(Exception):
                self.service.delete(self.uuid)


class HopWay(Way):
    """
    Two copy-only Twisted hops in front of the engine: ``hop1`` next to the
    client, then ``hop2``.
    """

    def __init__(self, api, hops):
        super().__init__()
        self.api = api
        self.hops = hops
        self.cid = self.sock = None

    def open(self, warmup):
        self.cid = self.api.create_container(
            IMAGE, command=["cat"], tty=True, stdin_open=True,
            host_config=self.api.create_host_config(log_config=LOG_CONFIG),
        )["Id"]
        self.api.start(self.cid)
        self.sock, _rest = docker_hijack(self.cid, stdin=True, stdout=True, stderr=True, path=self.hops.path)
        direct_keys(self.sock, warmup)
        # Hops chain from the engine outwards: the last one started is
        # the client's.
        self.pids = {"hop1": self.hops.procs[1].pid, "hop2": self.hops.procs[0].pid}

    def _keys(self, count, start):
        return direct_keys(self.sock, count, start)

    def close(self):
        if self.sock is not None:
            self.sock.close()
        if self.cid is not None:
            self.api.remove_container(self.cid, force=True)


def start_service(data_dir, tree):
    """
    A service run from the checkout ``tree`` (None: this one): its working
    directory and PYTHONPATH, which its agents inherit.
    """
    if tree is None:
        service = Service(data_dir, progress)
        service.start()
        return service
    saved_root, saved_path = _service.REPO_ROOT, os.environ.get("PYTHONPATH")
    _service.REPO_ROOT = tree
    os.environ["PYTHONPATH"] = tree
    try:
        service = Service(data_dir, progress)
        service.start()
    finally:
        _service.REPO_ROOT = saved_root
        if saved_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_path
    return service


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000, help="timed keystrokes each way [1000]")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up keystrokes [50]")
    parser.add_argument("--against", metavar="CHECKOUT",
                        help="also a service run from another checkout of csvc (a git worktree), keys taking "
                             "turns with this one's: reported as 'against'")
    args = parse_args(parser, argv, keys=20, warmup=5)
    if args.warmup + args.keys > MAX_KEYS:
        parser.error(f"--warmup plus --keys must be at most {MAX_KEYS} (one terminal line)")
    if args.against is not None:
        args.against = os.path.abspath(args.against)
        if not os.path.isdir(os.path.join(args.against, "csvc")):
            parser.error(f"--against {args.against}: not a checkout of csvc (no csvc/ there)")
    if shutil.which("perf") is None:
        progress("perf is not installed (Debian: apt-get install linux-perf)")
        raise BenchError("perf is not installed")

    data_dir = tempfile.mkdtemp(prefix="csvc-bench-segments-")
    dclient = docker.from_env()
    dclient.images.get(IMAGE)
    perf_data = os.path.join(data_dir, "perf.data")
    services, ways = [], []
    failed = True
    with contextlib.ExitStack() as stack:
        try:
            for label, tree in [("relay", None)] + ([("against", args.against)] if args.against else []):
                directory = os.path.join(data_dir, label)
                os.makedirs(directory)
                services.append(start_service(directory, tree))
                ways.append(RelayWay(services[-1]))
            ways.append(HopWay(dclient.api, stack.enter_context(Hops("twisted", 2, data_dir))))
            for way in ways:
                way.open(args.warmup)
            pids = [pid for way in ways for pid in way.pids.values()]
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-k", "mono", "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit",
                 "-p", ",".join(str(p) for p in pids), "-o", perf_data],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(1.5)
            order = list(ways)
            for i in range(args.warmup, args.warmup + args.keys):
                for way in order:
                    way.key(i)
                if len(order) > 2:
                    # Each way in each place in turn, never twice in a row:
                    # with the order reversed instead, the first and the last
                    # ran twice in a row at every turn, warm, and read 16-19
                    # us less in total than the same code in the middle (two
                    # services of one checkout and the hops).
                    order.append(order.pop(0))
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
            # Every thread of each process (the relay's segments are on the
            # reactor's thread; the others have none), read while they run.
            tasks = [{name: sorted(threads_of(pid)) for name, pid in way.pids.items()} for way in ways]
            script = subprocess.run(
                ["perf", "script", "-i", perf_data, "-F", "tid,time,event,trace"],
                capture_output=True, text=True, check=True,
            ).stdout
            failed = False
        except BaseException as exc:
            progress(f"FAILED: {exc!r}")
            for service in services:
                progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
            raise
        finally:
            for way in ways:
                way.close()
            stack.close()
            for service in services:
                service.stop()
            dclient.close()
            if failed:
                progress(f"temp dir kept: {data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)

    by_tid = parse(script)
    found = [way.figures(by_tid, way_tasks, args.keys) for way, way_tasks in zip(ways, tasks)]
    relay, hops_fig = found[0], found[-1]
    result = {"bench": "echo_segments", "keys": args.keys, "relay": relay}
    if args.against:
        result["against"] = dict(found[1], checkout=args.against)
    result["baseline"] = {"twisted_2_hops": hops_fig}
    result["ratio"] = round(relay["total_p50_us"] / hops_fig["total_p50_us"], 3)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
