#!/usr/bin/env python
"""
Sessions memory: control-plane RSS (VmRSS of the ``twistd csvc`` process,
from /proc/PID/status) per idle attached WebSocket session at N sessions,
and the peak RSS above idle while one client that never reads is attached
to a container writing M bytes.

    .venv/bin/python bench/sessions_memory.py [--sessions N] [--bytes M] [--settle S] [--smoke]

The service starts with RLIMIT_NOFILE raised to N + 1024 (soft and hard, in
a preexec_fn); the clients (bench/_wsclient.py, one subprocess) raise their
own.  Idle: a ``sleep 3600`` container; 16 sessions attached and closed
first (warm-up); RSS before, then N sessions attached (stdout+stderr),
settled 2 s, RSS after.  Stalled: ``head -c M /dev/zero`` created, one
session attached that reads nothing, then start; RSS sampled every 50 ms
until the container has exited.  ratio = per-session KiB / 32 KiB (goal).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time

from _service import BenchError, ClientProcess, Service, make_progress, parse_args, raise_nofile, rss_kib

progress = make_progress("sessions_memory")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000, help="idle sessions [1000]")
    parser.add_argument("--bytes", type=int, default=500 * 1024 * 1024, help="bytes written to the stalled client [500 MiB]")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds the service settles before each RSS reading (half as long for the warm-up) [2]")
    args = parse_args(parser, argv, sessions=10, bytes=1024 * 1024, settle=0.5)

    nofile = args.sessions + 1024
    raise_nofile(nofile)
    data_dir = tempfile.mkdtemp(prefix="csvc-bench-mem-")
    # The project's attach-session quota (50 by default) would refuse the
    # 51st session: this measures the relay, not the quota.
    service = Service(data_dir, progress, nofile=nofile, extra_args=["--quota-attach-sessions", "-1"])
    failed = True
    try:
        service.start()
        pid = service.pid
        with open(f"/proc/{pid}/limits") as f:
            limit_line = next(l for l in f if l.startswith("Max open files")).split()
        service_nofile = [int(limit_line[3]), int(limit_line[4])]
        uuid = service.create({"command": ["sleep", "3600"], "run": True})
        service.wait_status(uuid, ("running",))
        path = service.attach_path(uuid, stdout=True, stderr=True)
        warm = ClientProcess(service, [path] * 16, mode="idle")
        time.sleep(args.settle / 2)
        warm.release()
        warm.result()
        time.sleep(args.settle)
        rss_before = rss_kib(pid)
        t0 = time.monotonic()
        idle = ClientProcess(service, [path] * args.sessions, mode="idle")
        attach_s = time.monotonic() - t0
        time.sleep(args.settle)
        rss_after = rss_kib(pid)
        progress(f"{args.sessions} sessions attached in {attach_s:.1f}s: RSS {rss_before} -> {rss_after} KiB")
        idle.release()
        idle.result()
        service.delete(uuid)
        time.sleep(args.settle)

        # Stalled client.
        uuid = service.create({"command": ["sh", "-c", f"head -c {args.bytes} /dev/zero"]})
        stall = ClientProcess(service, [service.attach_path(uuid, stdout=True, stderr=True)], mode="stall")
        time.sleep(args.settle / 2)
        rss_base = rss_kib(pid)
        service.start_container(uuid)
        t0 = time.monotonic()
        peak = rss_base
        next_poll = t0
        status = None
        while time.monotonic() - t0 < 170:
            peak = max(peak, rss_kib(pid))
            if time.monotonic() >= next_poll:
                status = service.show(uuid)
                if status.get("status") not in ("created", "running"):
                    break
                next_poll = time.monotonic() + 0.5
            time.sleep(0.05)
        written_s = time.monotonic() - t0
        rss_end = rss_kib(pid)
        progress(f"stalled client: {args.bytes} bytes in {written_s:.1f}s ({status.get('status')}), "
                 f"RSS {rss_base} -> peak {peak} KiB")
        if status.get("status") != "exited":
            raise BenchError(f"the writer did not finish: {status!r}")
        stall.release()
        stall.result()
        service.delete(uuid)
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc!r}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        service.stop()
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    per_session = (rss_after - rss_before) / args.sessions
    result = {
        "bench": "sessions_memory",
        "sessions": args.sessions,
        "service_nofile": service_nofile,
        "attach_all_s": round(attach_s, 2),
        "rss_idle_kib": rss_before,
        "rss_sessions_kib": rss_after,
        "per_session_kib": round(per_session, 2),
        "stalled": {
            "bytes": args.bytes,
            "write_s": round(written_s, 2),
            "rss_base_kib": rss_base,
            "rss_peak_kib": peak,
            "rss_end_kib": rss_end,
            "peak_above_idle_mib": round((peak - rss_base) / 1024, 2),
        },
        "baseline": {"goal_per_session_kib": 32, "goal_peak_above_idle_mib": 16},
        "ratio": round(per_session / 32, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
