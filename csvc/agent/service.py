"""
``twistd csvc-agent``: options and the service that wires the agent.
"""

import os
import socket

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.python import usage

from csvc import process
from csvc.agent.core import AgentCore
from csvc.agent.events import EngineEvents
from csvc.agent.link import AgentProtocol
from csvc.agent.output import OutputFollower


class Options(usage.Options):
    optParameters = [
        ["connect", None, "tcp:127.0.0.1:8781", "Endpoint of the control plane's agent port."],
        ["enroll-token", None, os.environ.get("CSVC_ENROLL_TOKEN"),
         "This instance's enrollment token (default: $CSVC_ENROLL_TOKEN)."],
        ["engine", None, "docker", "Container engine: docker or lxc."],
        ["capacity", None, 10, "Containers this instance may run.", int],
        ["docker-socket", None, "/var/run/docker.sock", "The Docker engine's socket."],
        ["lxc-path", None, "/var/lib/csvc-lxc", "Where the lxc engine keeps its containers."],
        ["hostname", None, socket.gethostname(), "Name this instance reports."],
    ]

    def postOptions(self):
        if not self["enroll-token"]:
            raise usage.UsageError("--enroll-token is required")
        if self["engine"] not in ("docker", "lxc"):
            raise usage.UsageError(f"--engine {self['engine']!r}: only 'docker' and 'lxc' are supported")
        if self["capacity"] < 1:
            raise usage.UsageError("--capacity must be at least 1")


class EngineService(Service):
    """
    Starts and stops the engine driver and its event stream in order.
    """

    def __init__(self, engine, events):
        self._engine = engine
        self._events = events

    def startService(self):
        Service.startService(self)
        self._engine.start()
        self._events.start()

    def stopService(self):
        Service.stopService(self)
        self._events.stop()
        self._engine.stop()


def make_engine(options, reactor):
    if options["engine"] == "lxc":
        from csvc.agent.lxc_engine import LxcEngine

        return LxcEngine(reactor, options["lxc-path"])
    from csvc.agent.docker_engine import DockerEngine

    return DockerEngine(reactor, options["docker-socket"])


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    process.tune(reactor)
    engine = make_engine(options, reactor)
    core = AgentCore(
        engine,
        options["enroll-token"],
        options["capacity"],
        options["hostname"],
        follower_factory=OutputFollower,
        clock=reactor,
    )
    top = MultiService()
    EngineService(engine, EngineEvents(engine, core, reactor)).setServiceParent(top)
    factory = Factory.forProtocol(lambda: AgentProtocol(core, reactor))
    ClientService(
        clientFromString(reactor, options["connect"]),
        factory,
        retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=10.0),
        clock=reactor,
    ).setServiceParent(top)
    return top
