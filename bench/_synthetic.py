"""
A synthetic agent for the benchmarks (not a benchmark itself): the real
agent (``csvc.agent.link.AgentProtocol`` over ``csvc.agent.core.AgentCore``)
on an engine without containers, so that the AMP contract it speaks is the
one the real agent speaks today, and the engine contract it implements is
``csvc.agent.engine.IEngine``, checked against the Docker and LXC engines by
tests/unit/test_engine_interface.py.

- ``SyntheticEngine``: containers are records in memory; a container runs
  until the bench says it exits (``exit``); its output is whatever the bench
  pushes through the ``SyntheticOutput`` attached to it.  What it does not
  model (images, volumes, networks, execs, transfers) fails with the
  contract's ``EngineError``, as an engine that cannot would.
- ``SyntheticOutput``: the agent's output follower (what ``AgentCore`` makes
  with its ``follower_factory``) for such a container: ``push`` sends chunks
  of zeros through the agent's own ``send`` (Output boxes, the window of
  ``OUTPUT_WINDOW``) as fast as the control plane answers them, with none of
  the parsing of an engine stream in the way.
- ``connect_agent``: the agent connected and registered to a control plane.
"""

import os
import time

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from csvc.wire import commands
from csvc.agent.core import AgentCore
from csvc.agent.engine import IEngine
from csvc.agent.link import AgentProtocol

CHUNK = commands.CHUNK_SIZE
WINDOW = commands.OUTPUT_WINDOW


def _absent(what):
    return defer.fail(commands.EngineError(f"the synthetic engine has no {what}"))


class SyntheticOutput(Protocol):
    """
    The output follower of one synthetic container (``AgentCore``'s
    ``follower_factory``: made with the agent's ``send``, an output reader
    and the seq to count on from).  ``done`` fires with the last seq once
    the engine ended the stream (``connectionLost``) and every chunk is
    acknowledged, as ``csvc.agent.output.OutputFollower``'s does.
    """

    def __init__(self, send, reader, seq):
        self._send = send
        self._reader = reader
        self.seq = seq
        self.done = defer.Deferred()
        self._outstanding = 0
        self._ended = False
        self._stopped = False

    @property
    def cursor(self):
        return self._reader.cursor

    def push(self, nbytes, window=WINDOW):
        """
        Send ``nbytes`` of zeros on stdout in chunks of CHUNK_SIZE, at most
        ``window`` unacknowledged; fires with ``(t_first, t_last_ack,
        last_seq)`` once every chunk is acknowledged (a failed send fails
        it, and ``done``).
        """
        data = b"\0" * CHUNK
        total = (nbytes + CHUNK - 1) // CHUNK
        first = self.seq
        pushed = defer.Deferred()
        state = {"sent": 0, "acked": 0, "t0": None}

        def send_more():
            while state["sent"] < total and state["sent"] - state["acked"] < window and not self._stopped:
                state["sent"] += 1
                size = min(CHUNK, nbytes - (state["sent"] - 1) * CHUNK)
                if state["t0"] is None:
                    state["t0"] = time.monotonic()
                self.seq = first + state["sent"]
                self._outstanding += 1
                d = self._send(self.seq, 1, data if size == CHUNK else data[:size], "")
                d.addCallbacks(acked, failed)

        def acked(_):
            self._outstanding -= 1
            state["acked"] += 1
            if state["acked"] == total:
                pushed.callback((state["t0"], time.monotonic(), self.seq))
            else:
                send_more()
            self._check_done()

        def failed(failure):
            self._outstanding -= 1
            if not pushed.called:
                pushed.errback(failure)
            self.fail(failure)

        send_more()
        return pushed

    def connectionLost(self, reason=None):
        self._ended = True
        self._check_done()

    def _check_done(self):
        if self._ended and self._outstanding == 0 and not self.done.called:
            self.done.callback(self.seq)

    def stop(self):
        self._stopped = True

    def fail(self, failure):
        self._stopped = True
        if not self.done.called:
            self.done.errback(failure)


@implementer(IEngine)
class SyntheticEngine:
    """
    An engine whose containers are records and whose processes run until
    ``exit`` is called for them.
    """

    name = "synthetic"

    def __init__(self, instance="synthetic-1"):
        self._instance = instance
        #: uuid -> the container's summary (``IEngine.inspect``)
        self._containers = {}
        #: engine id -> the protocol attached to its output
        self._outputs = {}
        #: uuid -> Deferreds fired with the output protocol at its start
        self._waiting = {}

    def start(self):
        pass

    def stop(self):
        pass

    # -- the bench's side ----------------------------------------------------

    def started(self, uuid):
        """
        Fires with the container's output protocol once it is started.
        """
        d = defer.Deferred()
        self._waiting.setdefault(uuid, []).append(d)
        return d

    def exit(self, uuid, exit_code=0):
        """
        The container's process exits: its output stream ends.
        """
        summary = self._summary(uuid)
        summary.update(state="exited", running=False, exit_code=exit_code)
        protocol = self._outputs.pop(summary["engine_id"], None)
        if protocol is not None:
            protocol.connectionLost(Failure(ConnectionDone()))

    # -- control -------------------------------------------------------------

    def _summary(self, uuid):
        try:
            return self._containers[uuid]
        except KeyError:
            raise commands.NoSuchContainer(f"No such container: {uuid}") from None

    def _get(self, uuid):
        return defer.maybeDeferred(lambda: dict(self._summary(uuid)))

    def create(self, spec):
        if spec["uuid"] in self._containers:
            return defer.fail(commands.Conflict(f"container {spec['uuid']} exists"))
        engine_id = "synthetic-" + spec["uuid"]
        self._containers[spec["uuid"]] = {
            "uuid": spec["uuid"], "instance": self._instance, "engine_id": engine_id, "state": "created",
            "running": False, "exit_code": None, "started_at": None, "finished_at": None,
            "tty": bool(spec.get("tty")), "auto_remove": bool(spec.get("auto_remove")),
        }
        return defer.succeed(engine_id)

    def start_container(self, uuid):
        try:
            summary = self._summary(uuid)
        except commands.NoSuchContainer as exc:
            return defer.fail(exc)
        summary.update(state="running", running=True, exit_code=None)
        protocol = self._outputs.get(summary["engine_id"])
        for d in self._waiting.pop(uuid, []):
            d.callback(protocol)
        return defer.succeed(None)

    def stop_container(self, uuid, timeout):
        return self._get(uuid).addCallback(lambda summary: self.exit(uuid, 143) if summary["running"] else None)

    def kill_container(self, uuid, signal):
        return self._get(uuid).addCallback(lambda summary: self.exit(uuid, 137) if summary["running"] else None)

    def remove_container(self, uuid, force, volumes=False):
        def remove(summary):
            if summary["running"]:
                if not force:
                    raise commands.Conflict(f"container {uuid} is running: stop it or force")
                self.exit(uuid, 137)
            del self._containers[uuid]

        return self._get(uuid).addCallback(remove)

    def pause_container(self, uuid, paused):
        return _absent("pause")

    def paused(self, uuid):
        return self._get(uuid).addCallback(lambda _: False)

    def top(self, uuid, ps_args=None):
        return _absent("processes")

    def stats(self, uuid):
        return _absent("stats")

    def update(self, uuid, update):
        return _absent("resources to update")

    def sizes(self, project_id):
        return defer.succeed({})

    def ports(self, uuid):
        return self._get(uuid).addCallback(lambda _: {})

    def inspect(self, uuid):
        return self._get(uuid)

    def health(self, uuid):
        return self._get(uuid).addCallback(lambda _: None)

    def facts(self):
        return defer.succeed({
            "NCPU": os.cpu_count(), "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "ServerVersion": "synthetic", "OperatingSystem": "synthetic",
        })

    def inventory(self):
        return defer.succeed([dict(summary) for summary in self._containers.values()])

    # -- images --------------------------------------------------------------

    def images(self):
        return defer.succeed([])

    def inspect_image(self, name):
        return defer.fail(commands.NoSuchImage(f"No such image: {name}"))

    def pull_image(self, image):
        return _absent("registry")

    # -- streams -------------------------------------------------------------

    def attach(self, engine_id, protocol, stdin=False, output=True):
        if stdin:
            return _absent("stdin")
        if output:
            self._outputs[engine_id] = protocol
        return defer.succeed(None)

    def follow_logs(self, engine_id, protocol):
        # What a container pushed while attached is not kept (the agent's
        # core fails the follower with this).
        return _absent("log")

    def resize(self, uuid, height, width):
        return _absent("TTY")

    def follow_events(self, protocol):
        return _absent("events")

    # -- exec, transfers, volumes, networks ----------------------------------

    def exec_create(self, uuid, spec):
        return _absent("exec")

    def exec_start(self, exec_id, tty, protocol):
        return _absent("exec")

    def exec_inspect(self, exec_id):
        return _absent("exec")

    def exec_resize(self, exec_id, height, width):
        return _absent("exec")

    def download(self, uuid, kind, options, protocol):
        return _absent("files")

    def archive_stat(self, uuid, path):
        return _absent("files")

    def upload(self, uuid, options, body):
        return _absent("files")

    def list_volumes(self, prefix):
        return defer.succeed([])

    def create_volume(self, name, labels):
        return _absent("volumes")

    def inspect_volume(self, name):
        return defer.fail(commands.NoSuchVolume(f"No such volume: {name}"))

    def remove_volume(self, name, force):
        return defer.fail(commands.NoSuchVolume(f"No such volume: {name}"))

    def list_networks(self, prefix, names):
        return defer.succeed([])

    def create_network(self, name, options):
        return _absent("networks")

    def inspect_network(self, name):
        return defer.fail(commands.NoSuchNetwork(f"No such network: {name}"))

    def remove_network(self, name):
        return defer.fail(commands.NoSuchNetwork(f"No such network: {name}"))

    def connect_network(self, uuid, name, aliases):
        return defer.fail(commands.NoSuchNetwork(f"No such network: {name}"))

    def disconnect_network(self, uuid, name, force):
        return defer.fail(commands.NoSuchNetwork(f"No such network: {name}"))


class _RegisteringCore(AgentCore):
    """
    ``AgentCore`` that also tells whoever connected it when it registered.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.registered = defer.Deferred()

    def connected(self, link):
        d = super().connected(link)

        def tell(result):
            if not self.registered.called:
                self.registered.callback(result)
            return result

        def failed(failure):
            if not self.registered.called:
                self.registered.errback(failure)
            return failure

        return d.addCallbacks(tell, failed)


@defer.inlineCallbacks
def connect_agent(reactor, port, enroll_token, hostname="synthetic-1", capacity=100):
    """
    A synthetic agent connected to the control plane's agent port on
    loopback and registered with ``enroll_token``: fires with ``(engine,
    link)`` (``link.transport.loseConnection()`` ends it).
    """
    engine = SyntheticEngine(hostname)
    core = _RegisteringCore(engine, enroll_token, capacity, hostname, follower_factory=SyntheticOutput,
                            clock=reactor)
    link = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), AgentProtocol(core, reactor))
    yield core.registered
    return engine, link
