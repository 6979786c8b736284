#!/usr/bin/env python
"""
Lifecycle benchmark: wall time of create + start + wait of a container
running ``true`` (image csvc/busybox:latest), through csvc's REST API
against directly through the Docker SDK on the same engine.

Run from the repo root (Docker engine running, image built; see
scripts/bootstrap.sh)::

    .venv/bin/python bench/lifecycle.py [--runs N] [--warmup W]

Prints exactly one JSON line on stdout; progress goes to stderr.  The
service runs as a subprocess (its own process group, so that the agents it
spawns are stopped with it) in a temporary data dir, logging to
``service.log`` in that dir; the dir is kept and named on stderr if the
benchmark fails.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import docker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _service  # noqa: E402
from _service import IMAGE, SERVICE_IMAGE, BenchError, make_progress, parse_args, percentile  # noqa: E402

progress = make_progress("lifecycle")


class DockerBaseline:
    def __init__(self):
        self.client = docker.from_env()
        self.client.ping()
        self.client.images.get(IMAGE)  # fails early if the image is missing
        self.host_config = self.client.api.create_host_config(
            log_config={"Type": "local", "Config": {}}
        )

    def run_once(self):
        api = self.client.api
        t0 = time.perf_counter()
        container = api.create_container(IMAGE, command=["true"], host_config=self.host_config)
        cid = container["Id"]
        try:
            api.start(cid)
            result = api.wait(cid)
            elapsed = time.perf_counter() - t0
        finally:
            api.remove_container(cid, force=True)
        if result.get("StatusCode") != 0:
            raise BenchError(f"docker baseline: container exited with {result!r}")
        return elapsed

    def close(self):
        self.client.close()


# -- service: csvc through its REST API -----------------------------------


class Service(_service.Service):
    """
    The control plane of bench/_service.py, timing create+start+wait.
    """

    def __init__(self, data_dir):
        super().__init__(data_dir, progress)

    def run_once(self):
        t0 = time.perf_counter()
        status, raw = self.request(
            "POST", "/v1/containers",
            {"image": SERVICE_IMAGE, "command": ["true"], "run": True},
        )
        if status != 202:
            raise BenchError(f"POST /v1/containers: {status} {raw[:2000]!r}")
        uuid = json.loads(raw)["uuid"]
        try:
            status, raw = self.request("POST", f"/v1/containers/{uuid}/wait")
            elapsed = time.perf_counter() - t0
            if status != 200:
                raise BenchError(f"POST /v1/containers/{uuid}/wait: {status} {raw[:2000]!r}")
            result = json.loads(raw)
            if result.get("exit_code") != 0:
                raise BenchError(f"container {uuid} did not exit 0: {result!r}")
        finally:
            status, raw = self.request("DELETE", f"/v1/containers/{uuid}")
            if status != 204:
                raise BenchError(f"DELETE /v1/containers/{uuid}: {status} {raw[:2000]!r}")
        return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each kind [30]")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs of each kind [3]")
    args = parse_args(parser, argv, runs=2, warmup=1)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    data_dir = tempfile.mkdtemp(prefix="csvc-bench-lifecycle-")
    baseline = DockerBaseline()
    service = Service(data_dir)
    failed = True
    try:
        service.start()
        for i in range(args.warmup):
            baseline.run_once()
            service.run_once()
        progress(f"warm-up done ({args.warmup} runs each)")
        docker_times, service_times = [], []
        for i in range(args.runs):
            # Alternate which goes first, to spread drift evenly.
            if i % 2 == 0:
                docker_times.append(baseline.run_once())
                service_times.append(service.run_once())
            else:
                service_times.append(service.run_once())
                docker_times.append(baseline.run_once())
            progress(
                f"run {i + 1}/{args.runs}: docker {docker_times[-1]:.4f}s "
                f"service {service_times[-1]:.4f}s"
            )
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        service.stop()
        baseline.close()
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    s_med = statistics.median(service_times)
    d_med = statistics.median(docker_times)
    ratio = s_med / d_med
    result = {
        "bench": "lifecycle",
        "runs": args.runs,
        "service_median_s": round(s_med, 4),
        "service_p90_s": round(percentile(service_times, 90), 4),
        "baseline": {
            "docker_sdk_median_s": round(d_med, 4),
            "docker_sdk_p90_s": round(percentile(docker_times, 90), 4),
        },
        "ratio": round(ratio, 3),
        "overhead_pct": round((ratio - 1) * 100, 1),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
