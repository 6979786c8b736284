#!/usr/bin/env python
"""
Placement benchmark: containers placed per second through the running
service (``POST /v1/containers``, ``["sleep", "300"]``, ``run: false`` so no
engine start) with 1, 10 and 100 local instances of capacity 10, each filled
exactly; and provider calls per 100 containers (one shared instance, 100
creates: the instances the local provider makes for the project).

Baseline: the same number of containers as the largest run, created straight
on the Docker engine (``docker create`` through the SDK, same image, command
and log driver as the agent's, from as many client threads) — what placement
costs beyond the engine's own create.  ratio = placed per second through csvc
with the most instances / direct creates per second.

Run from the repo root (Docker engine running, image built)::

    .venv/bin/python bench/placement.py [--instances 1,10,100] [--concurrency 4] [--per 100] [--smoke]

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

from _service import IMAGE, LOG_CONFIG, BenchError, Service, make_progress, parse_args  # noqa: E402

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


def provider_calls_per_100(concurrency, count=100):
    service, data_dir = run_service(1, extra=["--instance-grace", "3600"])
    ok = False
    try:
        service.start()
        uuids, seconds = create_all(service, count, concurrency)
        status, raw = service.request("GET", "/v1/instances")
        if status != 200:
            raise BenchError(f"GET /v1/instances: {status}")
        made = [i for i in json.loads(raw)["instances"] if i.get("provider") == "local" and not i.get("shared")]
        with open(service.log_path, "rb") as f:
            logged = f.read().count(b"created for project")
        progress(f"{count} containers over a shared instance: {len(made)} instances made ({logged} logged) "
                 f"in {seconds:.2f} s")
        for uuid in uuids:
            service.delete(uuid)
        ok = True
        return {"containers": count, "provider_calls": logged, "instances_made": len(made),
                "seconds": round(seconds, 3)}
    finally:
        service.stop()
        if ok:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            progress(f"kept {data_dir}:\n{service.log_tail()}")


def direct_creates(count, concurrency):
    """
    ``count`` containers created straight on the engine from ``concurrency``
    threads, timed as a whole, then removed.
    """
    import docker

    client = docker.from_env()
    client.images.get(IMAGE)  # fails early if the image is missing
    host_config = client.api.create_host_config(log_config=LOG_CONFIG)
    label = f"csvc-bench-placement-{os.getpid()}"

    def worker(indices):
        return [client.api.create_container(IMAGE, command=["sleep", "300"], host_config=host_config,
                                            labels={label: "1"}, name=f"{label}-{i}")["Id"]
                for i in indices]

    chunks = [list(range(count))[k::concurrency] for k in range(concurrency)]
    start = time.monotonic()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            ids = [i for chunk in pool.map(worker, chunks) for i in chunk]
        seconds = time.monotonic() - start
    finally:
        for container in client.api.containers(all=True, filters={"label": label}):
            client.api.remove_container(container["Id"], force=True)
        client.close()
    progress(f"direct: {len(ids)} docker creates in {seconds:.2f} s")
    return {"direct_docker_creates": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="1,10,100")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--per", type=int, default=100, help="containers over one shared instance [100]")
    args = parse_args(parser, None, instances="1", per=10)
    rates = [placement_rate(int(n), args.concurrency) for n in args.instances.split(",")]
    calls = provider_calls_per_100(args.concurrency, args.per)
    largest = max(rates, key=lambda r: r["instances"])
    baseline = direct_creates(largest["containers"], args.concurrency)
    print(json.dumps({"bench": "placement", "capacity": CAPACITY, "concurrency": args.concurrency,
                      "placement": rates, "per_100": calls, "baseline": baseline,
                      "ratio": round(largest["per_s"] / baseline["per_s"], 3)}))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        progress(f"failed: {exc}")
        sys.exit(1)
