#!/usr/bin/env python
"""
Relay throughput with the engine out of the loop: the control plane
(``twistd csvc --instances 0``, a subprocess) gets its output from a
synthetic agent in this process (bench/_synthetic.py: the real agent's link
and core on an engine without containers, which registers, answers
CreateContainer/StartContainer/RemoveContainer..., pushes Output boxes of
CHUNK_SIZE (256 KiB) with seq from 1, keeping at most OUTPUT_WINDOW
unanswered, then reports the exit), and WebSocket clients
(bench/_wsclient.py, a subprocess) attached to the container receive it.

    .venv/bin/python bench/relay_throughput.py [--bytes N] [--sessions 1,8] [--runs R] [--smoke]

The figure per phase is bytes delivered to all clients together divided by
the time from the first Output box to the last client's status message;
each phase runs ``--runs`` times and the median run is reported, with every
run's figure beside it (this machine's figures move by a third between
consecutive runs).
Persistence is in that path: every chunk is written to the output files
(csvc/store/outputfiles.py, the default) before it is answered, so the
baseline measured here is the journal and store alone (``Journal.append``
with the same window, in this process, into a fresh store with output files
in the same data dir), the ceiling for the relay.
ratio = one-session relay MB/s / journal+store alone MB/s.

The instance row and its enrollment token are made directly in the store
(``Store.run_sync(instances.thd_create, ...)``) before the service
starts: csvc-manage has no instance command.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid as uuidlib

from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from _service import (
    BenchError, ClientProcess, Service, children_cpu_s, machine_busy_s, make_progress, parse_args, process_cpu_s,
    self_cpu_s,
)
from _synthetic import connect_agent

from csvc.wire import commands
from csvc.stdio.journal import Journal
from csvc.store import containers, instances
from csvc.store.db import Store, make_engine, upgrade

progress = make_progress("relay_throughput")
CHUNK = commands.CHUNK_SIZE
WINDOW = commands.OUTPUT_WINDOW


@defer.inlineCallbacks
def journal_alone(reactor, data_dir, nbytes, window=WINDOW):
    """
    MB/s of Journal.append (window of ``window``) into a fresh SQLite store
    with output files, as the service keeps them.
    """
    engine = make_engine("sqlite:///" + os.path.join(data_dir, "journal-only.sqlite"))
    upgrade(engine)
    store = Store(engine, reactor, output_dir=os.path.join(data_dir, "journal-only-output"))
    store.startService()
    try:
        inst, _token = store.run_sync(instances.thd_create, "j", "static", 10, True, None, None, None, store.now())
        store.run_sync(instances.thd_update, inst["uuid"], {"status": "active"})
        cuuid = str(uuidlib.uuid4())
        store.run_sync(containers.thd_place, dict(
            uuid=cuuid, name="j", project_id="bench", user_id="bench", image="x", command=["x"],
            environment={}, workdir=None, labels={}, tty=False, interactive=False, memory=None,
            cpu=None, auto_remove=False, status="running"), None, store.quota_defaults, store.now())
        journal = Journal(store)
        data = b"\0" * CHUNK
        total = (nbytes + CHUNK - 1) // CHUNK
        done = defer.Deferred()
        state = {"sent": 0, "acked": 0}

        def send_more():
            while state["sent"] < total and state["sent"] - state["acked"] < window:
                state["sent"] += 1
                journal.append(cuuid, state["sent"], 1, data, "").addCallbacks(acked, done.errback)

        def acked(_):
            state["acked"] += 1
            if state["acked"] == total:
                done.callback(None)
            else:
                send_more()

        t0 = time.monotonic()
        send_more()
        yield done
        elapsed = time.monotonic() - t0
    finally:
        yield store.stopService()
    return total * CHUNK / elapsed / 1e6


def make_instance(data_dir):
    engine = make_engine("sqlite:///" + os.path.join(os.path.abspath(data_dir), "csvc.sqlite"))
    upgrade(engine)
    from twisted.internet import reactor

    store = Store(engine, reactor)
    row, token = store.run_sync(instances.thd_create, "synthetic-1", "static", 100, True, None, None, None,
                                store.now())
    engine.dispose()
    return row, token


@defer.inlineCallbacks
def phase(reactor, service, engine, sessions, nbytes):
    uuid = yield deferToThread(service.create, {"command": ["synthetic"], "instance": "synthetic-1"})
    started = engine.started(uuid)
    try:
        path = service.attach_path(uuid, stdout=True, stderr=True)
        client = yield deferToThread(ClientProcess, service, [path] * sessions)
        yield deferToThread(service.start_container, uuid)
        output = yield started
        yield deferToThread(service.wait_status, uuid, ("running",))
        # Let every session finish its first catch-up and join the live tail.
        yield task.deferLater(reactor, 0.5, lambda: None)
        marks = machine_busy_s(), process_cpu_s(service.pid), self_cpu_s(), children_cpu_s()
        t0, t_acked, _last_seq = yield output.push(nbytes)
        # The process exits: the agent's core reports it (Exited) as the
        # real agent does once every chunk is acknowledged.
        engine.exit(uuid, 0)
        result = yield deferToThread(client.result)
        # The client has exited and been reaped: its CPU is the children's.
        busy, plane, bench, clients = (
            now - then
            for now, then in zip((machine_busy_s(), process_cpu_s(service.pid), self_cpu_s(), children_cpu_s()), marks)
        )
    finally:
        yield deferToThread(service.delete, uuid)
    got = result["bytes"]
    bad = [i for i, (b, s) in enumerate(zip(got, result["status"])) if b != nbytes or not s or s.get("exit_code") != 0]
    if bad:
        raise BenchError(f"sessions {bad} incomplete: bytes {got}, status {result['status']}")
    t_end = max(result["end"])
    total = sum(got)
    figures = {
        "sessions": sessions,
        "delivered_MBps": round(total / (t_end - t0) / 1e6, 1),
        "per_session_MBps": round(nbytes / (t_end - t0) / 1e6, 1),
        "persisted_MBps": round(nbytes / (t_acked - t0) / 1e6, 1),
        # CPU seconds per GiB pushed: the control plane, this process (the
        # synthetic agent), the WebSocket client(s), and the rest of the
        # machine's busy time.
        "cpu_s_per_GiB": {
            key: round(value / (nbytes / (1 << 30)), 2)
            for key, value in (
                ("control_plane", plane), ("synthetic_agent", bench), ("clients", clients),
                ("rest", busy - plane - bench - clients), ("total", busy),
            )
        },
    }
    progress(f"{sessions} session(s): {figures}")
    return figures


@defer.inlineCallbacks
def run(reactor, args):
    data_dir = tempfile.mkdtemp(prefix="csvc-bench-relay-")
    failed = True
    service = Service(data_dir, progress, instances=0)
    link = None
    try:
        alone = yield journal_alone(reactor, data_dir, args.bytes)
        progress(f"journal+store alone: {alone:.1f} MB/s")
        _row, token = make_instance(data_dir)
        yield deferToThread(service.start)
        # The real agent's link (TCP_NODELAY, heartbeats) and core.
        engine, link = yield connect_agent(reactor, service.agents_port, token)
        yield phase(reactor, service, engine, 1, 1 << 20)  # warm-up
        phases = []
        for n in args.sessions:
            runs = []
            for _ in range(args.runs):
                runs.append((yield phase(reactor, service, engine, n, args.bytes)))
            runs.sort(key=lambda p: p["delivered_MBps"])
            median = dict(runs[len(runs) // 2])
            median["delivered_MBps_runs"] = [p["delivered_MBps"] for p in runs]
            phases.append(median)
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc!r}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        if link is not None and link.transport is not None:
            link.transport.loseConnection()
        yield deferToThread(service.stop)
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    one = next((p for p in phases if p["sessions"] == 1), phases[0])
    result = {
        "bench": "relay_throughput",
        "bytes": args.bytes,
        "runs": args.runs,
        "chunk": CHUNK,
        "window": WINDOW,
        "store": "files",
        "phases": phases,
        "one_session_MBps": one["delivered_MBps"],
        "baseline": {"journal_store_alone_MBps": round(alone, 1)},
        "ratio": round(one["delivered_MBps"] / alone, 3),
    }
    print(json.dumps(result), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=1024 * 1024 * 1024, help="bytes pushed per phase [1 GiB]")
    parser.add_argument("--runs", type=int, default=3, help="runs of each phase; the median is reported [3]")
    parser.add_argument("--sessions", default="1,8", help="sessions per phase, comma-separated [1,8]")
    args = parse_args(parser, argv, bytes=1024 * 1024, runs=1, sessions="1,2")
    args.sessions = [int(x) for x in args.sessions.split(",")]
    task.react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
