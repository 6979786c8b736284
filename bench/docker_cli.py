"""
Benchmark: ``docker run --rm csvc/busybox true`` with the real Docker CLI,
through csvc's Docker-compatible API versus directly against the engine.

Run from the repo root (Docker engine running, image built; see
scripts/bootstrap.sh)::

    .venv/bin/python bench/docker_cli.py [--runs N] [--warmup W]

Both ways run the same binary (``/usr/bin/docker``, Debian's docker.io CLI):

- csvc: ``DOCKER_HOST=tcp://127.0.0.1:PORT`` on a ``twistd csvc`` subprocess
  (free loopback ports, temporary data dir, one local agent), with
  ``DOCKER_CONFIG`` pointing at a temporary dir whose ``config.json`` sends
  the token from ``csvc-manage`` as ``HttpHeaders`` (``X-Auth-Token``,
  ``X-Auth-Project-Id``);
- direct: ``DOCKER_HOST=unix:///var/run/docker.sock`` with an empty
  ``config.json`` in another temporary dir.

After the warm-up runs of each kind, the timed runs of each kind are
interleaved (alternating which goes first); every run must exit 0.  Prints
exactly one JSON line on stdout; progress goes to stderr.  At the end the
service is stopped and any container left on the engine with the label
``csvc.project=<project>`` is force-removed.  If the benchmark fails, the
temporary dir (with the service's ``service.log``) is kept and named.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _service import DOCKER_SOCK, BenchError, Service, make_progress, parse_args, percentile  # noqa: E402

DOCKER_CLI = "/usr/bin/docker"
IMAGE = "csvc/busybox"
RUN_CMD = [DOCKER_CLI, "run", "--rm", IMAGE, "true"]
RUN_TIMEOUT = 120.0

progress = make_progress("docker_cli")


def write_config(path, headers=None):
    os.makedirs(path, exist_ok=True)
    config = {"HttpHeaders": headers} if headers else {}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)


def cli_env(host, config_dir):
    env = dict(os.environ)
    for key in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"):
        env.pop(key, None)
    env["DOCKER_HOST"] = host
    env["DOCKER_CONFIG"] = config_dir
    return env


def run_once(label, env, extra_args=()):
    cmd = [DOCKER_CLI, *extra_args, *RUN_CMD[1:]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(
            f"{label}: {' '.join(cmd)} exited {proc.returncode}:\n"
            f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
        )
    return elapsed, proc


def cleanup_containers(project):
    """Force-remove engine containers labelled csvc.project=<project>."""
    env = cli_env(f"unix://{DOCKER_SOCK}", tempfile.mkdtemp(prefix="csvc-bench-dockercfg-"))
    try:
        ls = subprocess.run(
            [DOCKER_CLI, "ps", "-aq", "--filter", f"label=csvc.project={project}"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        ids = ls.stdout.split()
        if ids:
            progress(f"removing {len(ids)} leftover container(s) of project {project}")
            subprocess.run([DOCKER_CLI, "rm", "-f", *ids], env=env, capture_output=True, timeout=120)
        return len(ids)
    finally:
        shutil.rmtree(env["DOCKER_CONFIG"], ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each kind [20]")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs of each kind [3]")
    parser.add_argument("--debug-run", action="store_true",
                        help="after the timed runs, run one `docker --debug run` through csvc "
                             "and copy its stderr to ours (request timing)")
    args = parse_args(parser, argv, runs=1, warmup=0)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not os.access(DOCKER_CLI, os.X_OK):
        raise BenchError(f"{DOCKER_CLI} not found")

    # A project of our own, so that the label filter finds only our containers.
    project = f"bench-dockercli-{os.getpid()}"
    data_dir = tempfile.mkdtemp(prefix="csvc-bench-dockercli-")
    service = Service(data_dir, progress, instances=1, project=project)
    failed = True
    try:
        service.start()
        csvc_cfg = os.path.join(data_dir, "docker-config-csvc")
        direct_cfg = os.path.join(data_dir, "docker-config-direct")
        write_config(csvc_cfg, {"X-Auth-Token": service.token, "X-Auth-Project-Id": project})
        write_config(direct_cfg)
        csvc_env = cli_env(f"tcp://127.0.0.1:{service.api_port}", csvc_cfg)
        direct_env = cli_env(f"unix://{DOCKER_SOCK}", direct_cfg)

        for _ in range(args.warmup):
            run_once("direct", direct_env)
            run_once("csvc", csvc_env)
        progress(f"warm-up done ({args.warmup} runs each)")

        csvc_times, direct_times = [], []
        for i in range(args.runs):
            if i % 2 == 0:
                direct_times.append(run_once("direct", direct_env)[0])
                csvc_times.append(run_once("csvc", csvc_env)[0])
            else:
                csvc_times.append(run_once("csvc", csvc_env)[0])
                direct_times.append(run_once("direct", direct_env)[0])
            progress(f"run {i + 1}/{args.runs}: direct {direct_times[-1]:.4f}s "
                     f"csvc {csvc_times[-1]:.4f}s")

        if args.debug_run:
            elapsed, proc = run_once("csvc --debug", csvc_env, ["--debug"])
            progress(f"docker --debug run through csvc took {elapsed:.4f}s; its stderr:\n"
                     f"{proc.stderr.decode(errors='replace')}")
        failed = False
    except BaseException as exc:
        progress(f"FAILED: {exc}")
        progress(f"service log ({service.log_path}), last lines:\n{service.log_tail()}")
        raise
    finally:
        service.stop()
        try:
            cleanup_containers(project)
        except Exception as exc:  # cleanup must not hide the result or the error
            progress(f"cleanup of csvc.project={project} containers failed: {exc!r}")
        if failed:
            progress(f"temp dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    c_med = statistics.median(csvc_times)
    d_med = statistics.median(direct_times)
    result = {
        "bench": "docker_cli",
        "runs": args.runs,
        "csvc_median_s": round(c_med, 4),
        "csvc_p90_s": round(percentile(csvc_times, 90), 4),
        "baseline": {
            "direct_median_s": round(d_med, 4),
            "direct_p90_s": round(percentile(direct_times, 90), 4),
        },
        "ratio": round(c_med / d_med, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError:
        sys.exit(1)
