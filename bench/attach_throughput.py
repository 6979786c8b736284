#!/usr/bin/env python
"""
Attach throughput: MB/s of a container writing N bytes of zeros to stdout
(``head -c N /dev/zero``, image csvc/busybox), received through csvc's
WebSocket attach relay, against a direct ``docker attach`` of an equivalent
container on the same engine with the same log driver (``local``).

    .venv/bin/python bench/attach_throughput.py [--bytes N] [--runs R] [--floor] [--malloc-default]

Relay: ``POST /v1/containers`` (not run), a WebSocket client (raw-socket
client in a subprocess, bench/_wsclient.py) attaches with subprotocol
``channel.csvc.v1``, then ``POST /v1/containers/UUID/start``; timed from the
start request to the status message (channel 3); the time from the first
output byte after the start and from the last output byte to the status are
reported beside it.  Direct: the Docker SDK
creates the container with ``--log-driver local`` (the agent's options), a
raw engine attach socket (``POST /containers/ID/attach?stream=1&stdout=1``,
what the SDK's ``attach_socket`` opens) is opened, then ``start``; timed from
the start call to the end of the attach stream.  Runs alternate; medians
are reported.  ratio = relay MB/s / direct MB/s.

CPU seconds per GiB are reported for both kinds of run, by whom they were
spent: the control plane, its agent and the WebSocket client (each from
/proc or the children's rusage), and the rest of the machine's busy time
(/proc/stat), which is the engine's path (dockerd, containerd-shim, the
container) plus anything else that ran.  On a machine whose CPUs the runs
fill, MB/s is inversely proportional to the total, so ``cpu_bound_ratio``
(direct total / relay total) is what the ratio can reach here.

``--floor`` adds, in turn with the others, the direct attach through one
and through two copying processes chained in front of the engine's socket
(``floor``), socat (in C) and bench/_twisted_hop.py (Python on Twisted):
relays of as many processes as csvc's that only copy, no persistence, no
WebSocket.  socat's ``ratio_to_direct`` is what any relay of two processes
can reach on this machine, Twisted's what one on csvc's stack can.  Their
CPU is in ``engine_and_rest``.

``relay_chunks_runs``: how many output boxes the agent sent in each run
(entries of the container's output index, read before it is deleted), and
``relay_chunk_KiB_mean`` their mean size.
"""

import argparse
import contextlib
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time

import docker

from csvc.store.outputfiles import ENTRY

from _service import (
    DOCKER_SOCK, IMAGE, LOG_CONFIG, BenchError, ClientProcess, Hops, Service, child_pids, children_cpu_s,
    docker_hijack, machine_busy_s, make_progress, parse_args, process_cpu_s, process_faults, self_cpu_s,
)

progress = make_progress("attach_throughput")


def direct_once(client, nbytes, path=DOCKER_SOCK):
    api = client.api
    host_config = api.create_host_config(log_config=LOG_CONFIG)
    cid = api.create_container(
        IMAGE, command=["sh", "-c", f"head -c {nbytes} /dev/zero"], host_config=host_config
    )["Id"]
    try:
        sock, rest = docker_hijack(cid, stdout=True, stderr=True, path=path)
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        payload = 0
        header = bytearray()
        remaining = 0  # payload bytes left in the current frame

        def consume(mv):
            nonlocal payload, remaining, header
            pos, n = 0, len(mv)
            while pos < n:
                if remaining:
                    take = min(remaining, n - pos)
                    payload += take
                    remaining -= take
                    pos += take
                    continue
                need = 8 - len(header)
                header += mv[pos:pos + need]
                pos += min(need, n - pos)
                if len(header) == 8:
                    remaining = struct.unpack_from(">I", header, 4)[0]
                    header = bytearray()

        if rest:
            consume(memoryview(rest))
        busy0, self0 = machine_busy_s(), self_cpu_s()
        t0 = time.monotonic()
        api.start(cid)
        while True:
            got = sock.recv_into(buf)
            if not got:
                break
            consume(view[:got])
        elapsed = time.monotonic() - t0
        client_cpu, busy = self_cpu_s() - self0, machine_busy_s() - busy0
        sock.close()
        code = api.wait(cid)["StatusCode"]
    finally:
        api.remove_container(cid, force=True)
    if payload != nbytes or code != 0:
        raise BenchError(f"direct: got {payload} of {nbytes} bytes, exit {code}")
    return elapsed, {"client": client_cpu, "engine_and_rest": busy - client_cpu, "total": busy}


def relay_once(service, nbytes):
    uuid = service.create({"command": ["sh", "-c", f"head -c {nbytes} /dev/zero"]})
    (agent,) = child_pids(service.pid)
    try:
        client = ClientProcess(service, [service.attach_path(uuid, stdout=True, stderr=True)])
        marks = machine_busy_s(), process_cpu_s(service.pid), process_cpu_s(agent), children_cpu_s()
        faults = process_faults(service.pid), process_faults(agent)
        t0 = time.monotonic()
        service.start_container(uuid)
        result = client.result()
        plane_faults, agent_faults = process_faults(service.pid) - faults[0], process_faults(agent) - faults[1]
        # The client has exited (and been reaped): its CPU is the children's.
        busy, plane, agent_cpu, client_cpu = (
            now - then
            for now, then in zip(
                (machine_busy_s(), process_cpu_s(service.pid), process_cpu_s(agent), children_cpu_s()), marks
            )
        )
        # The output file's index has an entry per chunk the agent sent.
        index = os.path.join(service.data_dir, "output", uuid + ".idx")
        chunks = os.path.getsize(index) // ENTRY.size
    finally:
        service.delete(uuid)
    got = result["bytes"][0]
    status = result["status"][0]
    if got != nbytes or not status or status.get("exit_code") != 0:
        raise BenchError(f"relay: got {got} of {nbytes} bytes, status {status!r}")
    cpu = {
        "control_plane": plane,
        "agent": agent_cpu,
        "client": client_cpu,
        "engine_and_rest": busy - plane - agent_cpu - client_cpu,
        "total": busy,
    }
    mib = nbytes / (1 << 20)
    faults = {"control_plane": plane_faults / mib, "agent": agent_faults / mib}
    return result["end"][0] - t0, result["first"][0] - t0, result["end"][0] - result["last"][0], cpu, faults, chunks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=256 * 1024 * 1024, help="bytes written [256 MiB]")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each kind [3]")
    parser.add_argument("--floor", action="store_true",
                        help="also the direct attach through one and two socat and Twisted processes (floor)")
    parser.add_argument("--malloc-default", action="store_true",
                        help="run the service with glibc's own allocator settings (CSVC_MALLOC=default)")
    args = parse_args(parser, argv, bytes=1024 * 1024, runs=1, floor=True)
    if args.malloc_default:
        os.environ["CSVC_MALLOC"] = "default"  # inherited by the service and its agent

    data_dir = tempfile.mkdtemp(prefix="csvc-bench-attach-")
    client = docker.from_env()
    client.images.get(IMAGE)
    service = Service(data_dir, progress)
    failed = True
    relay_times, first_bytes, status_lags, direct_times = [], [], [], []
    relay_cpus, direct_cpus, relay_faults, relay_chunks = [], [], [], []
    chains = contextlib.ExitStack()
    floor, hops = {}, {}
    try:
        for kind in Hops.KINDS if args.floor else ():
            for count in (1, 2):
                chain = chains.enter_context(Hops(kind, count, data_dir))
                hops[chain.name] = chain
                floor[chain.name] = []
        service.start()
        # Warm-up (small): code paths, image, SQLite file.
        relay_once(service, 1 << 20)
        direct_once(client, 1 << 20)
        for i in range(args.runs):
            if i % 2 == 0:
                direct = direct_once(client, args.bytes)
                t, f, lag, cpu, faults, chunks = relay_once(service, args.bytes)
            else:
                t, f, lag, cpu, faults, chunks = relay_once(service, args.bytes)
                direct = direct_once(client, args.bytes)
            for name in (sorted(floor) if i % 2 == 0 else sorted(floor, reverse=True)):
                floor[name].append(direct_once(client, args.bytes, hops[name].path))
            relay_faults.append(faults)
            relay_chunks.append(chunks)
            direct_times.append(direct[0])
            direct_cpus.append(direct[1])
            relay_cpus.append(cpu)
            relay_times.append(t)
            first_bytes.append(f)
            status_lags.append(lag)
            mb = args.bytes / 1e6
            progress(f"run {i + 1}/{args.runs}: relay {mb / t:.1f} MB/s, direct {mb / direct_times[-1]:.1f} MB/s"
                     + "".join(f", {name} {mb / runs[-1][0]:.1f}" for name, runs in floor.items()))
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc!r}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        service.stop()
        chains.close()
        client.close()
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    mb = args.bytes / 1e6
    gib = args.bytes / (1 << 30)

    def per_gib(runs):
        return {key: round(statistics.median(run[key] for run in runs) / gib, 2) for key in runs[0]}

    relay_cpu, direct_cpu = per_gib(relay_cpus), per_gib(direct_cpus)
    relay = mb / statistics.median(relay_times)
    direct = mb / statistics.median(direct_times)
    result = {
        "bench": "attach_throughput",
        "bytes": args.bytes,
        "runs": args.runs,
        "relay_MBps": round(relay, 1),
        "relay_MBps_runs": [round(mb / t, 1) for t in relay_times],
        "relay_first_byte_s": round(statistics.median(first_bytes), 3),
        # From the last output byte to the exit status (inside relay_MBps's time).
        "relay_status_after_last_byte_s": round(statistics.median(status_lags), 3),
        "client": "raw-socket WebSocket client in a subprocess (bench/_wsclient.py)",
        # CPU seconds per GiB (medians): who spent the machine's CPUs.
        # engine_and_rest is the machine's busy time less the named
        # processes: dockerd, containerd-shim, the container, and anything
        # else running meanwhile.  When the CPUs are full, MB/s goes as
        # 1 / total, so direct total / relay total is the ratio's ceiling.
        "relay_cpu_s_per_GiB": relay_cpu,
        "cpu_bound_ratio": round(direct_cpu["total"] / relay_cpu["total"], 3),
        # Minor page faults per MiB relayed (medians); --malloc-default runs
        # the service with glibc's own allocator settings.
        "relay_page_faults_per_MiB": {
            key: round(statistics.median(run[key] for run in relay_faults), 1) for key in relay_faults[0]
        },
        # Output boxes the agent sent per run (entries of the output
        # file's index), and their mean size: per-box costs go with these.
        "relay_chunks_runs": relay_chunks,
        "relay_chunk_KiB_mean": round(args.bytes / 1024 / statistics.median(relay_chunks), 1),
        "malloc": "default" if args.malloc_default else "csvc (csvc/process.py)",
        "baseline": {
            "direct_docker_attach_MBps": round(direct, 1),
            "direct_MBps_runs": [round(mb / t, 1) for t in direct_times],
            "direct_cpu_s_per_GiB": direct_cpu,
            "log_driver": "local",
        },
        "ratio": round(relay / direct, 3),
    }
    if floor:
        # The same direct attach through copying processes in a chain
        # (bench/_service.py Hops): relays that only copy.  ratio_to_direct
        # for two is what a two-process relay doing no work of its own
        # reaches here: in C (socat) and on csvc's stack (twisted).
        result["floor"] = {
            name: {
                "MBps": round(mb / statistics.median(t for t, _ in runs), 1),
                "MBps_runs": [round(mb / t, 1) for t, _ in runs],
                "cpu_s_per_GiB": per_gib([cpu for _, cpu in runs]),
                "ratio_to_direct": round(mb / statistics.median(t for t, _ in runs) / direct, 3),
            }
            for name, runs in floor.items()
        }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
