"""
The LXC engine behind the agent (Debian's ``lxc``, busybox template).

Each csvc container is an LXC container named ``csvc-<uuid>`` under the
engine's lxcpath, with the network type ``empty`` (no network).  Next to its
LXC config the engine keeps the csvc facts of the container in ``csvc.json``
(uuid, project, command, environment, run count, start time), so the
inventory survives an agent restart.

Each start is a *run*: a detached ``csvc.agent.lxc_runner`` process runs the
command with ``lxc-execute`` and appends its stdout and stderr, as Docker's
multiplexed frames, to one output file, then writes the exit code.  The
output file is the container's log: ``attach`` follows it from its current
end (opened before the start, it sees every byte of the run), ``follow_logs``
from its beginning; both end once the run has exited and everything is read.

Every ``lxc-*`` command, file read and ``/proc`` scan runs on the engine's own
thread pool; only plain data comes back to the reactor.
"""

import json
import os
import re
import shutil
import signal as signals
import subprocess
import sys

from twisted.internet.defer import Deferred, fail, inlineCallbacks, returnValue, succeed
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from csvc.agent import lxc_runner, wall
from csvc.wire.commands import (
    EngineError, InvalidSpec, NoSuchContainer, NoSuchImage, NoSuchNetwork, NoSuchVolume, Refused,
)
from csvc.agent.engine import IEngine

#: The one image this engine has: the rootfs of LXC's busybox template.
IMAGE_NAME = "busybox"
IMAGE_ID = "lxc-template-busybox"

#: A run whose runner vanished without writing its exit (host restart).
LOST_EXIT_CODE = 255

#: What became of a signal (``LxcContainers.signal``).
SENT, NOT_RUNNING, PENDING = "sent", "not running", "pending"

#: At most this much output is read from a file at a time.
READ_SIZE = 256 * 1024


def engine_name(uuid):
    """
    LXC's name for a csvc container (as Docker's: ``csvc-<uuid>``).
    """
    return f"csvc-{uuid}"


def _is_busybox(image):
    repository = (image or "").split("@", 1)[0].rsplit("/", 1)[-1]
    return repository.split(":", 1)[0] == IMAGE_NAME


def _signal_number(signal):
    text = str(signal).strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    number = getattr(signals, text, None)
    if not isinstance(number, int):
        raise InvalidSpec(f"unknown signal {signal!r}")
    return int(number)


class LxcContainers:
    """
    The blocking side: ``lxc-*`` commands and the container directories.
    Every method runs on the engine's thread pool and returns plain data.
    """

    def __init__(self, lxcpath, python=sys.executable):
        self.lxcpath = lxcpath
        self._python = python

    def directory(self, uuid):
        return os.path.join(self.lxcpath, engine_name(uuid))

    def _file(self, uuid, name):
        return os.path.join(self.directory(uuid), name)

    def _read_json(self, path):
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def meta(self, uuid):
        meta = self._read_json(self._file(uuid, lxc_runner.META))
        if meta is None:
            raise NoSuchContainer(f"No such container: {engine_name(uuid)}")
        return meta

    def _lxc(self, *argv):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise EngineError(f"{argv[0]} failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    # -- control -----------------------------------------------------------

    def create(self, spec):
        name = engine_name(spec["uuid"])
        os.makedirs(self.lxcpath, exist_ok=True)
        if os.path.exists(os.path.join(self.lxcpath, name)):
            raise EngineError(f"Conflict: the container name {name} is already in use")
        self._lxc("lxc-create", "-P", self.lxcpath, "-t", "busybox", "-n", name)
        config_path = os.path.join(self.lxcpath, name, "config")
        with open(config_path) as f:
            lines = [line for line in f.read().splitlines() if not line.startswith("lxc.net.")]
        lines.append("lxc.net.0.type = empty")
        lines.extend(_confinement_lines(spec.get("confinement") or {}))
        with open(config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        meta = {
            "uuid": spec["uuid"],
            "instance": spec.get("instance_uuid"),
            "project": spec.get("project_id"),
            "image": spec.get("image"),
            "command": list(spec.get("command") or []),
            "entrypoint": list(spec.get("entrypoint") or []),
            "environment": {str(k): str(v) for k, v in (spec.get("environment") or {}).items()},
            "workdir": spec.get("workdir") or "/",
            "labels": dict(spec.get("labels") or {}),
            "tty": False,
            "interactive": bool(spec.get("interactive")),
            "auto_remove": bool(spec.get("auto_remove")),
            "run": 0,
            "started_at": None,
        }
        lxc_runner.write_json(os.path.join(self.lxcpath, name, lxc_runner.META), meta)
        return name

    def start(self, uuid):
        summary = self.summary(uuid)
        if summary["running"]:
            return
        meta = self.meta(uuid)
        meta["run"] += 1
        meta["started_at"] = lxc_runner.now()
        # The run is starting: no runner pid yet (the runner writes it).
        # Written before the run count, so a reader never sees the new run
        # without it (and takes the run for lost).
        lxc_runner.write_json(self._file(uuid, lxc_runner.RUN), {"run": meta["run"], "pid": None})
        lxc_runner.write_json(self._file(uuid, lxc_runner.META), meta)
        name = engine_name(uuid)
        # The runner forks itself away; this child exits at once.
        result = subprocess.run(
            [self._python, "-m", "csvc.agent.lxc_runner", self.lxcpath, name, str(meta["run"])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(lxc_runner.__file__)))),
        )
        if result.returncode != 0:
            lxc_runner.write_json(
                self._file(uuid, lxc_runner.EXIT),
                {"run": meta["run"], "exit_code": 128, "finished_at": lxc_runner.now()},
            )
            why = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            raise EngineError(f"the run of {name} could not start: {why[0]}")

    def signal(self, uuid, number):
        """
        Send a signal to the container's command (LXC's init forwards only
        some; a KILL of init would hide the command's status).  Returns
        SENT, NOT_RUNNING, or PENDING while the run's processes are still
        starting.
        """
        if not self.summary(uuid)["running"]:
            return NOT_RUNNING
        init = self._init_pid(uuid)
        targets = _children(init) if init is not None else []
        if not targets:
            return PENDING
        for pid in targets:
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass
        return SENT

    def _init_pid(self, uuid):
        run = self._read_json(self._file(uuid, lxc_runner.RUN)) or {}
        runner = run.get("pid")
        if not runner:
            return None
        for execute in _children(runner):
            for init in _children(execute):
                return init
        return None

    def destroy(self, uuid):
        self.meta(uuid)
        name = engine_name(uuid)
        result = subprocess.run(
            ["lxc-destroy", "-P", self.lxcpath, "-n", name], capture_output=True, text=True
        )
        if result.returncode != 0 and os.path.exists(os.path.join(self.lxcpath, name)):
            shutil.rmtree(os.path.join(self.lxcpath, name))

    # -- state -------------------------------------------------------------

    def summary(self, uuid):
        meta = self.meta(uuid)
        exit = self._read_json(self._file(uuid, lxc_runner.EXIT)) or {}
        run = meta.get("run", 0)
        running = False
        exit_code, finished_at = exit.get("exit_code"), exit.get("finished_at")
        if run == 0:
            state = "created"
        elif exit.get("run") == run:
            state = "exited"
        elif self._runner_alive(uuid, run):
            state, running, exit_code, finished_at = "running", True, 0, None
        else:
            # The runner may have written the exit as it ended, just now.
            exit = self._read_json(self._file(uuid, lxc_runner.EXIT)) or {}
            if exit.get("run") == run:
                state, exit_code, finished_at = "exited", exit.get("exit_code"), exit.get("finished_at")
            else:
                state, exit_code, finished_at = "exited", LOST_EXIT_CODE, None
        return {
            "uuid": meta["uuid"],
            "instance": meta.get("instance"),
            "engine_id": engine_name(uuid),
            "state": state,
            "running": running,
            "exit_code": exit_code,
            "started_at": meta.get("started_at"),
            "finished_at": finished_at,
            "tty": bool(meta.get("tty")),
            "auto_remove": bool(meta.get("auto_remove")),
        }

    def _runner_alive(self, uuid, run):
        info = self._read_json(self._file(uuid, lxc_runner.RUN)) or {}
        if info.get("run") != run:
            return False
        if info.get("pid") is None:
            # Started a moment ago: the runner has not written its pid yet.
            return True
        try:
            with open(f"/proc/{info['pid']}/cmdline", "rb") as f:
                return b"lxc_runner" in f.read()
        except OSError:
            return False

    def inventory(self):
        try:
            names = sorted(os.listdir(self.lxcpath))
        except FileNotFoundError:
            return []
        summaries = []
        for name in names:
            if not name.startswith("csvc-"):
                continue
            try:
                summaries.append(self.summary(name[len("csvc-"):]))
            except NoSuchContainer:
                continue
        return summaries

    def facts(self):
        memory = None
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        memory = int(line.split()[1]) * 1024
        except OSError:
            pass
        version = subprocess.run(["lxc-execute", "--version"], capture_output=True, text=True).stdout.strip()
        return {"NCPU": os.cpu_count(), "MemTotal": memory, "ServerVersion": f"lxc {version}",
                "OperatingSystem": "LXC (busybox template)"}

    # -- output ------------------------------------------------------------

    def output_size(self, uuid):
        self.meta(uuid)
        try:
            return os.path.getsize(self._file(uuid, lxc_runner.OUTPUT))
        except FileNotFoundError:
            return 0

    def read_output(self, uuid, offset, until_run):
        """
        ``(data, ended)``: up to READ_SIZE bytes of output from ``offset``;
        ``ended`` once run ``until_run`` has exited and all is read (or the
        container is gone).
        """
        exit = self._read_json(self._file(uuid, lxc_runner.EXIT)) or {}
        try:
            meta = self.meta(uuid)
        except NoSuchContainer:
            return b"", True
        finished = exit.get("run", 0) >= until_run or (
            meta.get("run") == until_run and not self._runner_alive(uuid, until_run)
        )
        try:
            with open(self._file(uuid, lxc_runner.OUTPUT), "rb") as f:
                f.seek(offset)
                data = f.read(READ_SIZE)
        except FileNotFoundError:
            data = b""
        return data, finished and not data


def _children(pid):
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry))
    return children


@implementer(IPushProducer)
class OutputTail:
    """
    Delivers a container's output file from ``offset`` to ``protocol``
    (as its transport), polling for more while the run lasts; the
    protocol's pause holds the reading.
    """

    def __init__(self, engine, uuid, offset, until_run, protocol, interval=0.05):
        self._engine = engine
        self._uuid = uuid
        self._offset = offset
        self._until_run = until_run
        self._protocol = protocol
        self._interval = interval
        self._paused = False
        self._stopped = False
        self._reading = False
        self._call = None

    def start(self):
        self._protocol.makeConnection(self)
        self._schedule(0)

    def _schedule(self, delay):
        if not self._stopped and not self._paused and not self._reading and self._call is None:
            self._call = self._engine.reactor.callLater(delay, self._read)

    def _read(self):
        self._call = None
        self._reading = True
        d = self._engine.in_pool(self._engine.containers.read_output, self._uuid, self._offset, self._until_run)
        d.addCallbacks(self._got, self._failed)

    def _got(self, result):
        self._reading = False
        if self._stopped:
            return
        data, ended = result
        if ended:
            self._end(None)
            return
        if data:
            self._offset += len(data)
            self._protocol.dataReceived(data)
        self._schedule(0 if len(data) == READ_SIZE else self._interval)

    def _failed(self, failure):
        self._reading = False
        self._end(failure)

    def _end(self, failure):
        if self._stopped:
            return
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._protocol.connectionLost(failure or Failure(ConnectionDone()))

    # IPushProducer, and the transport the follower pauses
    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._schedule(0)

    def stopProducing(self):
        self._end(None)

    def loseConnection(self):
        self._end(None)


@implementer(IEngine)
class LxcEngine:
    """
    LXC containers, addressed by csvc container uuid, under ``lxcpath``.
    """

    log = Logger()
    name = "lxc"

    def __init__(self, reactor, lxcpath="/var/lib/csvc-lxc", threads=8):
        self.reactor = reactor
        self.containers = LxcContainers(lxcpath)
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="csvc-agent-lxc")

    def start(self):
        self._pool.start()

    def stop(self):
        self._pool.stop()

    def in_pool(self, fn, *args):
        return deferToThreadPool(self.reactor, self._pool, fn, *args)

    # -- control -----------------------------------------------------------

    def create(self, spec):
        # This engine honours no Docker option; those the wall refuses are
        # named as refused all the same.
        violations = wall.create_violations(_docker_body(spec), spec.get("project_id") or "",
                                            admin=spec.get("admin") is True)
        if violations:
            # (Logged by the agent's core, as the Docker engine's.)
            return fail(Refused(wall.describe(violations)))
        if spec.get("tty"):
            return _refuse("tty is not supported by the lxc engine")
        try:
            spec = dict(spec, confinement=_confinement(spec.get("docker_config")))
        except ValueError as exc:
            return _refuse(str(exc))
        if not _is_busybox(spec.get("image")):
            return fail(NoSuchImage(f"No such image: {spec.get('image')} (the lxc engine has only busybox)"))
        return self.in_pool(self.containers.create, spec)

    def start_container(self, uuid):
        return self.in_pool(self.containers.start, uuid)

    @inlineCallbacks
    def _wait_exit(self, uuid, timeout=None):
        waited = 0.0
        while timeout is None or waited < timeout:
            summary = yield self.in_pool(self.containers.summary, uuid)
            if not summary["running"]:
                returnValue(True)
            yield deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        returnValue(False)

    @inlineCallbacks
    def _signal(self, uuid, number, patience=10.0):
        """
        Signal the container's command, waiting (up to ``patience``
        seconds) for a run that is still starting; fires with whether it
        was running.
        """
        waited = 0.0
        while True:
            outcome = yield self.in_pool(self.containers.signal, uuid, number)
            if outcome != PENDING:
                returnValue(outcome == SENT)
            if waited >= patience:
                raise EngineError(f"the processes of {engine_name(uuid)} did not appear")
            yield deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05

    @inlineCallbacks
    def stop_container(self, uuid, timeout):
        """
        TERM, then KILL after ``timeout`` seconds; fires once it exited.
        """
        running = yield self._signal(uuid, signals.SIGTERM)
        if not running:
            return
        exited = yield self._wait_exit(uuid, max(timeout, 0))
        if not exited:
            yield self._signal(uuid, signals.SIGKILL)
            yield self._wait_exit(uuid, 30)

    @inlineCallbacks
    def kill_container(self, uuid, signal):
        number = _signal_number(signal)
        running = yield self._signal(uuid, number)
        if not running:
            raise EngineError(f"Cannot kill container {engine_name(uuid)}: it is not running")
        if number == signals.SIGKILL:
            yield self._wait_exit(uuid, 30)

    @inlineCallbacks
    def remove_container(self, uuid, force, volumes=False):
        # (``volumes``: this engine makes no volumes to remove.)
        summary = yield self.in_pool(self.containers.summary, uuid)
        if summary["running"]:
            if not force:
                raise EngineError(f"Cannot remove running container {engine_name(uuid)}: stop it or force")
            yield self._signal(uuid, signals.SIGKILL)
            yield self._wait_exit(uuid, 30)
        yield self.in_pool(self.containers.destroy, uuid)

    def inspect(self, uuid):
        return self.in_pool(self.containers.summary, uuid)

    def health(self, uuid):
        return succeed(None)

    def facts(self):
        return self.in_pool(self.containers.facts)

    def inventory(self):
        return self.in_pool(self.containers.inventory)

    # -- images ------------------------------------------------------------

    def _image(self):
        return {"Id": IMAGE_ID, "RepoTags": [f"{IMAGE_NAME}:latest"], "RepoDigests": [], "Size": 0,
                "Created": 0, "Labels": {}, "Config": {"Cmd": ["sh"], "Env": [], "WorkingDir": ""}}

    def images(self):
        return succeed([self._image()])

    def inspect_image(self, name):
        if not _is_busybox(name):
            return fail(NoSuchImage(f"No such image: {name}"))
        return succeed(self._image())

    def pull_image(self, image):
        return self.inspect_image(image).addCallback(lambda image: image["Id"])

    # -- streams -----------------------------------------------------------

    @inlineCallbacks
    def attach(self, engine_id, protocol, stdin=False, output=True):
        """
        Attach ``protocol`` to the container: with ``output``, it follows the
        output of the container's next (or current) run from now on; with
        ``stdin`` (output-less), what it writes is the running command's
        stdin and its write-close closes that stdin.
        """
        uuid = _uuid(engine_id)
        if stdin:
            if output:
                raise EngineError("the lxc engine attaches stdin and output separately")
            yield self._attach_stdin(uuid, protocol)
            return
        summary = yield self.inspect(uuid)
        meta = yield self.in_pool(self.containers.meta, uuid)
        offset = yield self.in_pool(self.containers.output_size, uuid)
        until_run = meta["run"] if summary["running"] else meta["run"] + 1
        OutputTail(self, uuid, offset, until_run, protocol).start()

    @inlineCallbacks
    def _attach_stdin(self, uuid, protocol, patience=10.0):
        meta = yield self.in_pool(self.containers.meta, uuid)
        if not meta.get("interactive"):
            raise EngineError(f"container {engine_name(uuid)} was not created interactive: no stdin")
        path = os.path.join(self.containers.directory(uuid), lxc_runner.STDIN)
        waited = 0.0
        while True:
            try:
                yield connectProtocol(UNIXClientEndpoint(self.reactor, path), protocol)
                return
            except (ConnectError, OSError):
                # The run may still be starting; a finished run has no stdin.
                summary = yield self.inspect(uuid)
                if not summary["running"] or waited >= patience:
                    raise EngineError(f"the stdin of {engine_name(uuid)} is closed")
            yield deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05

    @inlineCallbacks
    def follow_logs(self, engine_id, protocol):
        """
        The container's whole output, following while it runs.
        """
        uuid = _uuid(engine_id)
        meta = yield self.in_pool(self.containers.meta, uuid)
        OutputTail(self, uuid, 0, meta["run"], protocol).start()

    def resize(self, uuid, height, width):
        return succeed(None)

    def follow_events(self, protocol):
        """
        Only the agent starts LXC containers: no events to follow.
        """
        return Deferred()

    # -- exec --------------------------------------------------------------

    def exec_create(self, uuid, spec):
        return _refuse("exec is not supported by the lxc engine", EngineError)

    def exec_start(self, exec_id, tty, protocol):
        return _refuse("exec is not supported by the lxc engine", EngineError)

    def exec_inspect(self, exec_id):
        return _refuse("exec is not supported by the lxc engine", EngineError)

    def exec_resize(self, exec_id, height, width):
        return _refuse("exec is not supported by the lxc engine", EngineError)

    # -- pause, top, stats, update, transfers, volumes: not offered here ----

    def pause_container(self, uuid, paused):
        return _refuse("pause is not supported by the lxc engine", EngineError)

    def paused(self, uuid):
        return succeed(False)

    def top(self, uuid, ps_args=None):
        return _refuse("top is not supported by the lxc engine", EngineError)

    def stats(self, uuid):
        return _refuse("stats are not supported by the lxc engine", EngineError)

    def update(self, uuid, update):
        return _refuse("update is not supported by the lxc engine", EngineError)

    def ports(self, uuid):
        return succeed({})

    def sizes(self, project_id):
        # (Containers' sizes are not measured on this engine: 0, as before.)
        return succeed({})

    def download(self, uuid, kind, options, protocol):
        return _refuse(f"{kind} is not supported by the lxc engine", EngineError)

    def archive_stat(self, uuid, path):
        return _refuse("archives are not supported by the lxc engine", EngineError)

    def upload(self, uuid, options, body):
        return _refuse("archives are not supported by the lxc engine", EngineError)

    def list_volumes(self, prefix):
        return succeed([])

    def create_volume(self, name, labels):
        return _refuse("volumes are not supported by the lxc engine", EngineError)

    def inspect_volume(self, name):
        return fail(NoSuchVolume(f"get {name}: no such volume"))

    def remove_volume(self, name, force):
        return fail(NoSuchVolume(f"get {name}: no such volume"))

    def list_networks(self, prefix, names):
        return succeed([])

    def create_network(self, name, options):
        return _refuse("networks are not supported by the lxc engine", EngineError)

    def inspect_network(self, name):
        return fail(NoSuchNetwork(f"network {name} not found"))

    def remove_network(self, name):
        return fail(NoSuchNetwork(f"network {name} not found"))

    def connect_network(self, uuid, name, aliases):
        return fail(NoSuchNetwork(f"network {name} not found"))

    def disconnect_network(self, uuid, name, force):
        return fail(NoSuchNetwork(f"network {name} not found"))


def _uuid(engine_id):
    return engine_id[len("csvc-"):] if engine_id.startswith("csvc-") else engine_id


def _docker_body(spec):
    """
    The Docker create body the client's options (``spec["docker_config"]``)
    would make.
    """
    options = spec.get("docker_config") or {}
    if not isinstance(options, dict):
        return {"HostConfig": options}
    body = dict(options.get("Config") or {}) if isinstance(options.get("Config"), dict) else {}
    body["HostConfig"] = options.get("HostConfig")
    body["NetworkingConfig"] = options.get("NetworkingConfig")
    return body


#: The Docker options this engine honours: the control plane's safe defaults
#: (``csvc.compute.defaults``), which LXC has words of its own for.
_CONFINEMENT = frozenset({"PidsLimit", "CapDrop", "SecurityOpt"})


def _confinement(docker_config):
    """
    ``{"pids": N or None, "cap_drop": [...], "no_new_privs": bool}`` from a
    create's Docker options; ValueError naming any other option (this engine
    honours no other).
    """
    docker_config = docker_config or {}
    config = docker_config.get("Config") or {}
    host = docker_config.get("HostConfig") or {}
    others = sorted(set(k for k, v in host.items() if v not in (None, "", [], {})) - _CONFINEMENT)
    if others or any(v not in (None, "", [], {}) for v in config.values()) or docker_config.get("NetworkingConfig"):
        named = ", ".join(others) or "Config options"
        raise ValueError(f"docker options are not supported by the lxc engine ({named})")
    options = host.get("SecurityOpt") or []
    if any(o not in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true") for o in options):
        raise ValueError("docker options are not supported by the lxc engine (SecurityOpt)")
    pids = host.get("PidsLimit")
    return {
        "pids": pids if isinstance(pids, int) and pids > 0 else None,
        "cap_drop": [str(c).upper().removeprefix("CAP_") for c in host.get("CapDrop") or []],
        "no_new_privs": bool(options),
    }


def _confinement_lines(confinement):
    """
    The LXC configuration lines of a container's confinement (cgroup v1's
    pids controller, capabilities dropped, no_new_privs).
    """
    lines = []
    if confinement.get("pids"):
        lines.append(f"lxc.cgroup.pids.max = {int(confinement['pids'])}")
    caps = [c.lower() for c in confinement.get("cap_drop") or [] if re.fullmatch(r"[A-Z_]{2,32}", c)]
    if caps:
        lines.append("lxc.cap.drop = " + " ".join(caps))
    if confinement.get("no_new_privs"):
        lines.append("lxc.no_new_privs = 1")
    return lines


def _refuse(message, error=InvalidSpec):
    return fail(error(message))
