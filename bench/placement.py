#!/usr/bin/env python
"""
Placement benchmark: containers placed per second through the running
service (``POST /v1/containers``, ``["sleep", "300"]``, ``run: false`` so no
engine start) with 1, 10 and N local instances of capacity 10, each filled
exactly; and provider calls per 100 containers (one shared instance, 100
creates: the instances the local provider makes for the project).

Run from the repo root (Docker engine running, image built)::

    .venv/bin/python bench/placement.py [--instances 1,10,30] [--concurrency 4]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _service import BenchError, Service, make_progress  # noqa: E402

progress = make_progress("placement")
CAPACITY = 10
SPEC = {"command": ["sleep", "300"], "run": False}


def run_service(instances, extra=()):
    data_dir = tempfile.mkdtemp(prefix="csvc-bench-placement-")
    service = Service(data_dir, progress, instances=instances,
                      extra_args=["--instance-capacity", str(CAPACITY), "--instance-wait", "120",
                                  "--quota-containers", "-1", *extra])
    return service, data_dir


def create_all(service, count, concurrency):
    """
    ``count`` creates from ``concurrency`` client threads (one connection
    each); returns (uuids, seconds).
    """
    def worker(indices):
        client = Service.__new__(Service)
        client.__dict__.update(service.__dict__)
        client.conn = None
        out = [client.create(dict(SPEC, name=f"p{i}")) for i in indices]
        if client.conn is not None:
            client.conn.close()
        return out

    chunks = [list(range(count))[k::concurrency] for k in range(concurrency)]
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        uuids = [u for chunk in pool.map(worker, chunks) for u in chunk]
    return uuids, time.monotonic() - start


def placement_rate(instances, concurrency):
    service, data_dir = run_service(instances)
    ok = False
    try:
        service.start()
        count = instances * CAPACITY
        uuids, seconds = create_all(service, count, concurrency)
        progress(f"{instances} instance(s): {count} containers placed in {seconds:.2f} s")
        for uuid in uuids:
            service.delete(uuid)
        ok = True
        return {"instances": instances, "containers": count, "seconds": round(seconds, 3),
                "per_s": round(count / seconds, 1)}
    finally:
        service.stop()
        if ok:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            progress(f"kept {data_dir}:\n{service.log_tail()}")


def provider_calls_per_100(concurrency):
    service, data_dir = run_service(1, extra=["--instance-grace", "3600"])
    ok = False
    try:
        service.start()
        uuids, seconds = create_all(service, 100, concurrency)
        status, raw = service.request("GET", "/v1/instances")
        if status != 200:
            raise BenchError(f"GET /v1/instances: {status}")
        made = [i for i in json.loads(raw)["instances"] if i.get("provider") == "local" and not i.get("shared")]
        with open(service.log_path, "rb") as f:
            logged = f.read().count(b"created for project")
        progress(f"100 containers over a shared instance: {len(made)} instances made ({logged} logged) "
                 f"in {seconds:.2f} s")
        for uuid in uuids:
            service.delete(uuid)
        ok = True
        return {"containers": 100, "provider_calls": logged, "instances_made": len(made),
                "seconds": round(seconds, 3)}
    finally:
        service.stop()
        if ok:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            progress(f"kept {data_dir}:\n{service.log_tail()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="1,10,30")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    rates = [placement_rate(int(n), args.concurrency) for n in args.instances.split(",")]
    calls = provider_calls_per_100(args.concurrency)
    print(json.dumps({"bench": "placement", "capacity": CAPACITY, "concurrency": args.concurrency,
                      "placement": rates, "per_100": calls}))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        progress(f"failed: {exc}")
        sys.exit(1)
