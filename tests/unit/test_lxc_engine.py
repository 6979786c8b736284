"""
The LXC engine's pieces that need no LXC: the runner's command line, signal
names, images, run states read from the container directory, and the output
tail's pacing (driven by a ``Clock``).
"""

import os

import pytest
from twisted.internet.defer import succeed
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock

from csvc.agent import lxc_engine, lxc_runner
from csvc.agent import service as agent_service
from csvc.wire.commands import InvalidSpec, NoSuchContainer
from csvc.agent.lxc_engine import LxcContainers, OutputTail
from csvc.stdio.frames import encode_frame
from csvc.stdio.reader import OutputReader


def test_the_command_runs_with_its_environment_and_workdir():
    meta = {"command": ["echo", "hi"], "entrypoint": ["/bin/x"], "environment": {"A": "b c"}, "workdir": "/tmp"}
    argv = lxc_runner.command_line("/var/lib/l", "csvc-u", meta)
    assert argv[:2] == ["lxc-execute", "-q"]
    assert argv[argv.index("-n") + 1] == "csvc-u"
    wrapped = argv[argv.index("--") + 1:]
    assert wrapped[:5] == ["/bin/sh", "-c", lxc_runner.WRAPPER, "csvc", "/tmp"]
    assert wrapped[5:7] == ["env", "-i"]
    assert "A=b c" in wrapped
    assert wrapped[-3:] == ["/bin/x", "echo", "hi"]


def test_no_command_runs_a_shell():
    argv = lxc_runner.command_line("/l", "csvc-u", {})
    assert argv[-1] == "sh"
    assert argv[argv.index("csvc") + 1] == "/"


@pytest.mark.parametrize("name, number", [("KILL", 9), ("SIGTERM", 15), ("9", 9), ("sigint", 2)])
def test_signal_names(name, number):
    assert lxc_engine._signal_number(name) == number


def test_an_unknown_signal_is_invalid():
    with pytest.raises(InvalidSpec):
        lxc_engine._signal_number("NOPE")


@pytest.mark.parametrize("image, ok", [("busybox", True), ("csvc/busybox", True), ("busybox:1.36", True),
                                       ("alpine", False), ("no/such-image:1.0", False)])
def test_only_busybox_is_an_image(image, ok):
    assert lxc_engine._is_busybox(image) is ok


def _container(tmp_path, uuid="u1", run=0, **meta):
    directory = tmp_path / f"csvc-{uuid}"
    directory.mkdir()
    values = {"uuid": uuid, "run": run, "started_at": None, "tty": False, "auto_remove": False}
    values.update(meta)
    lxc_runner.write_json(str(directory / lxc_runner.META), values)
    return directory


def test_states_read_from_the_container_directory(tmp_path):
    containers = LxcContainers(str(tmp_path))
    with pytest.raises(NoSuchContainer):
        containers.summary("nope")
    directory = _container(tmp_path, run=0, auto_remove=True, instance="i-1")
    summary = containers.summary("u1")
    assert (summary["state"], summary["running"], summary["auto_remove"]) == ("created", False, True)
    assert summary["instance"] == "i-1"
    assert summary["engine_id"] == "csvc-u1"
    meta = containers.meta("u1")
    meta["run"] = 1
    lxc_runner.write_json(str(directory / lxc_runner.META), meta)
    # Started, the runner not yet up: running.
    lxc_runner.write_json(str(directory / lxc_runner.RUN), {"run": 1, "pid": None})
    assert containers.summary("u1")["running"] is True
    # The runner wrote its exit.
    lxc_runner.write_json(str(directory / lxc_runner.EXIT), {"run": 1, "exit_code": 3, "finished_at": "t"})
    summary = containers.summary("u1")
    assert (summary["state"], summary["exit_code"], summary["finished_at"]) == ("exited", 3, "t")
    # A runner that vanished without writing the exit of its run.
    meta["run"] = 2
    lxc_runner.write_json(str(directory / lxc_runner.META), meta)
    lxc_runner.write_json(str(directory / lxc_runner.RUN), {"run": 2, "pid": 2 ** 22 + 1})
    summary = containers.summary("u1")
    assert (summary["state"], summary["exit_code"]) == ("exited", lxc_engine.LOST_EXIT_CODE)
    assert [s["uuid"] for s in containers.inventory()] == ["u1"]


class _Recorder(Protocol):
    def __init__(self):
        self.data = b""
        self.lost = False

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.lost = True


class _Engine:
    """
    The engine as ``OutputTail`` sees it: a clock and a synchronous pool.
    """

    def __init__(self, containers):
        self.reactor = Clock()
        self.containers = containers

    def in_pool(self, fn, *args):
        return succeed(fn(*args))


def test_the_tail_follows_the_run_until_its_exit_then_ends(tmp_path):
    directory = _container(tmp_path, run=1)
    lxc_runner.write_json(str(directory / lxc_runner.RUN), {"run": 1, "pid": None})
    output = directory / lxc_runner.OUTPUT
    output.write_bytes(encode_frame(1, b"old\n"))
    engine = _Engine(LxcContainers(str(tmp_path)))
    protocol = _Recorder()
    offset = os.path.getsize(output)
    OutputTail(engine, "u1", offset, 1, protocol).start()
    engine.reactor.advance(0)
    assert protocol.data == b""
    with open(output, "ab") as f:
        f.write(encode_frame(1, b"new\n") + encode_frame(2, b"err\n"))
    engine.reactor.advance(0.05)
    reader = OutputReader(False)
    assert [(s, d) for s, d, _ in reader.feed(protocol.data)] == [(1, b"new\n"), (2, b"err\n")]
    assert not protocol.lost
    lxc_runner.write_json(str(directory / lxc_runner.EXIT), {"run": 1, "exit_code": 0, "finished_at": "t"})
    engine.reactor.advance(0.05)
    assert protocol.lost


def test_a_paused_tail_reads_nothing_until_resumed(tmp_path):
    directory = _container(tmp_path, run=1)
    lxc_runner.write_json(str(directory / lxc_runner.RUN), {"run": 1, "pid": None})
    engine = _Engine(LxcContainers(str(tmp_path)))
    protocol = _Recorder()
    tail = OutputTail(engine, "u1", 0, 1, protocol)
    tail.start()
    tail.pauseProducing()
    engine.reactor.advance(0)
    (directory / lxc_runner.OUTPUT).write_bytes(encode_frame(1, b"x"))
    engine.reactor.advance(1)
    assert protocol.data == b""
    tail.resumeProducing()
    engine.reactor.advance(0)
    assert protocol.data == encode_frame(1, b"x")
    tail.stopProducing()
    assert protocol.lost
    assert engine.reactor.getDelayedCalls() == []


def test_the_agent_accepts_the_lxc_engine():
    options = agent_service.Options()
    options.parseOptions(["--enroll-token", "t", "--engine", "lxc", "--lxc-path", "/srv/lxc"])
    assert (options["engine"], options["lxc-path"]) == ("lxc", "/srv/lxc")
    engine = agent_service.make_engine(options, Clock())
    assert engine.name == "lxc"


def test_an_environment_name_like_an_option_is_a_variable_of_the_container(tmp_path):
    # What lxc-execute runs in the container, run here: the wrapper, env and
    # the command, with names env could take for its options (csvc's PATH
    # comes first, whatever the client gives: env's options end there).
    import subprocess

    from csvc.agent import lxc_runner

    meta = {"environment": {"-u": "PATH", "-i": "1", "--chdir": "/"}, "workdir": str(tmp_path),
            "command": ["env"]}
    argv = lxc_runner.command_line("/lxc", "csvc-u1", meta)
    inside = argv[argv.index("--") + 1:]
    out = subprocess.run(inside, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert {"-u=PATH", "-i=1", "--chdir=/"} <= set(out.stdout.splitlines())
