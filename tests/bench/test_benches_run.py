"""
Every benchmark in bench/ still runs: each script, as a new user would run
it (``.venv/bin/python bench/NAME.py``, from the repository's root), at its
tiny size (``--smoke``), exits 0 and prints its one JSON line with the
bench's name, its baseline and its ratio.  A change that breaks a bench (a
contract the synthetic agent no longer speaks, an option renamed, a route
moved) fails here.  The figures of a smoke run mean nothing and are not
looked at; speed is the benchmarks' own business.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.integration.conftest import engine_available

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
#: Benches that need neither the Docker engine nor a local agent on it.
WITHOUT_ENGINE = {"hops", "output_store", "page_cache", "relay_throughput"}
#: Seconds one smoke run may take (each takes a few on an idle machine).
TIMEOUT = 180


def benches():
    return sorted(name[:-3] for name in os.listdir(BENCH) if name.endswith(".py") and not name.startswith("_"))


def bench_param(name):
    marks = [pytest.mark.bench]
    if name not in WITHOUT_ENGINE:
        marks.append(pytest.mark.integration)
    return pytest.param(name, marks=marks, id=name)


def test_every_bench_is_found():
    """
    The list the smoke runs come from is bench/'s scripts, helpers left out.
    """
    found = benches()
    assert "relay_throughput" in found and "lifecycle" in found
    assert not any(name.startswith("_") for name in found)


@pytest.mark.parametrize("name", [bench_param(name) for name in benches()])
def test_bench_runs(name):
    if name not in WITHOUT_ENGINE and not engine_available():
        pytest.fail("no Docker engine answers on /var/run/docker.sock: run `make bootstrap` first")
    env = dict(os.environ)
    env.pop("CSVC_BENCH_SMOKE", None)
    bench = subprocess.Popen(
        [sys.executable, os.path.join("bench", f"{name}.py"), "--smoke"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGINT first: the bench's own clean-up stops the service it started.
        bench.send_signal(signal.SIGINT)
        try:
            stdout, stderr = bench.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            bench.kill()
            stdout, stderr = bench.communicate()
        pytest.fail(f"bench/{name}.py --smoke did not finish within {TIMEOUT} s; its stderr:\n{stderr[-4000:]}")
    done = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    tail = done.stderr[-4000:]
    assert done.returncode == 0, f"bench/{name}.py --smoke exited {done.returncode}; its stderr:\n{tail}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"bench/{name}.py printed {len(lines)} lines, not one:\n{done.stdout[-4000:]}"
    result = json.loads(lines[0])
    assert result["bench"] == name
    assert isinstance(result["baseline"], dict) and result["baseline"]
    assert isinstance(result["ratio"], (int, float)) and not isinstance(result["ratio"], bool)
