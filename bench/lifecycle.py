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
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import docker

IMAGE = "csvc/busybox:latest"
SERVICE_IMAGE = "csvc/busybox"
PROJECT = "bench"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")


def progress(msg):
    print(f"lifecycle: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    """Linear-interpolation percentile (p in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- baseline: the Docker SDK directly ------------------------------------


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


class Service:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.log_path = os.path.join(data_dir, "service.log")
        self.api_port = free_port()
        self.agents_port = free_port()
        while self.agents_port == self.api_port:
            self.agents_port = free_port()
        self.proc = None
        self.log_file = None
        self.token = None
        self.conn = None

    def start(self):
        manage = subprocess.run(
            [os.path.join(VENV_BIN, "csvc-manage"), "--data-dir", self.data_dir,
             "token", "create", "--project", PROJECT, "--admin"],
            cwd=REPO_ROOT, capture_output=True, text=True,
        )
        if manage.returncode != 0:
            raise BenchError(
                f"csvc-manage token create failed (exit {manage.returncode}):\n"
                f"{manage.stdout}{manage.stderr}"
            )
        lines = [l for l in manage.stdout.splitlines() if l.strip()]
        if not lines:
            raise BenchError(f"csvc-manage printed no token:\n{manage.stderr}")
        self.token = lines[-1].strip()

        self.log_file = open(self.log_path, "wb")
        cmd = [
            os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "csvc",
            "--data-dir", self.data_dir,
            "--api", f"tcp:{self.api_port}:interface=127.0.0.1",
            "--agents", f"tcp:{self.agents_port}:interface=127.0.0.1",
        ]
        progress(f"starting service: {' '.join(cmd)} (log: {self.log_path})")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _connect(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=60)

    def request(self, method, path, body=None):
        headers = {"X-Auth-Token": self.token, "X-Auth-Project-Id": PROJECT}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.conn is None:
            self._connect()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            # One retry on a fresh connection (the server may have closed an
            # idle keep-alive connection).
            self.conn.close()
            self._connect()
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, raw

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"service exited with {self.proc.returncode} before it was ready")
            try:
                status, raw = self.request("GET", "/v1/instances")
                last = f"{status} {raw[:500]!r}"
                if status == 200:
                    instances = json.loads(raw).get("instances", [])
                    if any(i.get("status") == "active" for i in instances):
                        progress(f"service ready on port {self.api_port}")
                        return
            except (OSError, http.client.HTTPException) as exc:
                last = repr(exc)
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
            time.sleep(0.2)
        raise BenchError(
            f"no active instance within {READY_TIMEOUT:.0f}s; last GET /v1/instances: {last}"
        )

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

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            pgid = self.proc.pid  # start_new_session: the pid is the group id
            if self.proc.poll() is None:
                try:
                    os.killpg(pgid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    progress("service did not stop on SIGTERM; killing its process group")
            # Agents left in the group (or anything, after a timeout): kill.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                if sig == signal.SIGTERM:
                    time.sleep(1.0)
            if self.proc.poll() is None:
                self.proc.wait(5)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each kind [30]")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs of each kind [3]")
    args = parser.parse_args(argv)
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
