#!/usr/bin/env python
"""
Throttle: achieved attach rates against the caps of ``twistd csvc
--relay-rate R --session-rate S`` (bytes/s), Jain's fairness index across 8
bulk sessions under the global cap, and the echo latency of an interactive
session beside them.

    .venv/bin/python bench/throttle.py [--relay-rate R] [--session-rate S]
                                       [--bulk 8] [--duration D] [--smoke]

Phase A: one bulk session alone (a container writing zeros with ``head -c``,
enough to outlast the window): its rate against S.  Phase B: ``--bulk``
bulk sessions, each on its own such container, so that their demand (bulk x
S) exceeds R: their total against R, and Jain's index (sum x)^2 / (n sum
x^2) of their rates; meanwhile an interactive session (``cat`` in a TTY
container, attached with stdin) echoes one-byte keystrokes, 10 ms apart.
Rates are taken from the clients' byte counts (bench/_wsclient.py, sampled
every 250 ms) over D seconds after a 2 s warm-up (the buckets start full);
in phase B the warm-up starts once the last bulk container has started.
The same echo is measured before the bulk sessions start (idle).
ratio = achieved total / R in phase B.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time

from _service import (
    BenchError, ClientProcess, Service, WSClient, make_progress, parse_args, percentile,
)
from echo_latency import relay_keys

progress = make_progress("throttle")
WARM = 2.0
#: Seconds the bulk containers may take to start, one after the other.
START_ALLOWANCE = 10.0


def window_rates(result, t_start, duration, warm=WARM):
    """Per-session bytes/s between t_start + warm and t_start + warm + duration."""
    timeline = result["timeline"]

    def at(t):
        best = min(timeline, key=lambda s: abs(s[0] - t))
        return best

    a, b = at(t_start + warm), at(t_start + warm + duration)
    dt = b[0] - a[0]
    if dt <= 0:
        raise BenchError("no measurement window in the client's timeline")
    return [(y - x) / dt for x, y in zip(a[1], b[1])], dt


def jain(xs):
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)) if any(xs) else 0.0


def echo_stats(times):
    ms = [t * 1000 for t in times]
    return {"p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "max_ms": round(max(ms), 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relay-rate", type=int, default=8_000_000, help="global cap, bytes/s [8000000]")
    parser.add_argument("--session-rate", type=int, default=4_000_000, help="per-session cap, bytes/s [4000000]")
    parser.add_argument("--bulk", type=int, default=8, help="bulk sessions in phase B [8]")
    parser.add_argument("--duration", type=float, default=10.0, help="measurement window, s [10]")
    parser.add_argument("--keys", type=int, default=300, help="interactive keystrokes under load [300]")
    parser.add_argument("--warm", type=float, default=WARM, help=f"warm-up before each window, s [{WARM}]")
    parser.add_argument("--start-allowance", type=float, default=START_ALLOWANCE,
                        help=f"seconds the bulk containers may take to start [{START_ALLOWANCE}]")
    args = parse_args(parser, argv, duration=1.0, keys=20, bulk=2, warm=0.5, start_allowance=3.0)
    R, S = args.relay_rate, args.session_rate

    data_dir = tempfile.mkdtemp(prefix="csvc-bench-throttle-")
    service = Service(data_dir, progress, extra_args=["--relay-rate", str(R), "--session-rate", str(S)])
    failed = True
    made = []
    try:
        service.start()
        span = args.warm + args.duration + 1.0

        # Phase A: one session alone, capped by S.
        size = int(min(S, R) * span * 1.5)
        uuid = service.create({"command": ["sh", "-c", f"head -c {size} /dev/zero"]})
        made.append(uuid)
        client = ClientProcess(service, [service.attach_path(uuid)], duration=span)
        t0 = time.monotonic()
        service.start_container(uuid)
        rates, dt = window_rates(client.result(), t0, args.duration, args.warm)
        single = rates[0]
        progress(f"phase A: one session {single / 1e6:.3f} MB/s against a cap of {min(S, R) / 1e6:.3f}")
        service.delete(uuid)
        made.remove(uuid)

        # The interactive session, idle first.
        echo_uuid = service.create({"command": ["cat"], "tty": True, "interactive": True, "run": True})
        made.append(echo_uuid)
        service.wait_status(echo_uuid, ("running",))
        ws = WSClient(service.api_port, service.attach_path(echo_uuid, stdin=True), service.auth_headers())
        time.sleep(0.5)
        relay_keys(ws, 30)
        echo_idle = echo_stats(relay_keys(ws, 100))
        progress(f"echo with no bulk traffic: {echo_idle}")

        # Phase B: bulk sessions sharing R, the interactive session beside them.
        # The window opens WARM seconds after the *last* container started:
        # starting eight one after the other takes seconds on a busy machine,
        # and measured from the first start the sessions started last showed
        # less than their share (nothing to send yet), not the throttle.
        per = int(min(S, R / args.bulk) * (span + args.start_allowance) * 1.5)
        bulk = []
        for _ in range(args.bulk):
            u = service.create({"command": ["sh", "-c", f"head -c {per} /dev/zero"]})
            made.append(u)
            bulk.append(u)
        client = ClientProcess(service, [service.attach_path(u) for u in bulk], duration=span + args.start_allowance)
        t_first = time.monotonic()
        for u in bulk:
            service.start_container(u)
        t0 = time.monotonic()
        starts_s = t0 - t_first
        if starts_s > args.start_allowance:
            raise BenchError(f"starting {args.bulk} containers took {starts_s:.1f} s, over {args.start_allowance} s")
        progress(f"phase B: {args.bulk} containers started in {starts_s:.2f} s")
        time.sleep(args.warm)
        echo_times = []
        deadline = t0 + args.warm + args.duration
        while len(echo_times) < args.keys and time.monotonic() < deadline:
            echo_times.extend(relay_keys(ws, 1))
            time.sleep(0.008)
        rates, dt = window_rates(client.result(), t0, args.duration, args.warm)
        ws.close()
        echo_load = echo_stats(echo_times)
        total = sum(rates)
        progress(f"phase B: total {total / 1e6:.3f} MB/s against {R / 1e6:.3f}; per session "
                 f"{[round(r / 1e6, 3) for r in rates]}; echo {echo_load} ({len(echo_times)} keys)")
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc!r}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        for u in made:
            try:
                service.delete(u)
            except Exception:
                pass
        service.stop()
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    result = {
        "bench": "throttle",
        "relay_rate": R,
        "session_rate": S,
        "window_s": args.duration,
        "single": {"cap_Bps": min(S, R), "achieved_Bps": round(single),
                   "error_pct": round((single / min(S, R) - 1) * 100, 2)},
        "bulk": {"sessions": args.bulk, "cap_Bps": R, "achieved_Bps": round(total),
                 "error_pct": round((total / R - 1) * 100, 2),
                 "per_session_Bps": [round(r) for r in rates], "jain": round(jain(rates), 4),
                 "starts_s": round(starts_s, 2)},
        "interactive_under_load": dict(echo_load, keys=len(echo_times)),
        "baseline": {"interactive_no_bulk": echo_idle},
        "ratio": round(total / R, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
