"""
``twistd csvc-agent``: options and the service that wires the agent.
"""

import os
import socket

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python import usage

from csvc import fastpath, process
from csvc.agent.core import AgentCore
from csvc.agent.firewall import FirewallService, instance_firewall
from csvc.wire.port_rules import PortRules, endpoint_port, reserved_ports
from csvc.agent.events import EngineEvents
from csvc.agent.identity import AgentIdentity, IdentityEndpoint, IdentityError, parse_connect
from csvc.agent.link import AgentProtocol
from csvc.agent.output import OutputFollower


class Options(usage.Options):
    optParameters = [
        ["connect", None, "tcp:127.0.0.1:8781", "Endpoint of the control plane's agent port."],
        ["enroll-token", None, os.environ.get("CSVC_ENROLL_TOKEN"),
         "This instance's enrollment token (default: $CSVC_ENROLL_TOKEN)."],
        ["enroll-token-file", None, None,
         "Read the enrollment token from this file (removed once the token is used, with --ca-cert)."],
        ["ca-cert", None, None,
         "The control plane's CA certificate: dial --connect tls:HOST:PORT verifying the control plane, "
         "enroll once for a certificate of this agent's own and present it from then on."],
        ["state-dir", None, "/var/lib/csvc-agent", "Where the agent keeps its key and certificate (--ca-cert)."],
        ["engine", None, "docker", "Container engine: docker or lxc."],
        ["capacity", None, 10, "Containers this instance may run.", int],
        ["docker-socket", None, "/var/run/docker.sock", "The Docker engine's socket."],
        ["lxc-path", None, "/var/lib/csvc-lxc", "Where the lxc engine keeps its containers."],
        ["hostname", None, socket.gethostname(), "Name this instance reports."],
        ["instance-firewall", None, "auto",
         "Containers kept from this instance's ports and its metadata address by iptables: on, off, or auto "
         "(on when root with iptables)."],
        ["published-address", None, None,
         "The instance's public addresses ports are published on, comma-separated [default: all but host-only]."],
        ["published-ports", None, "1024-65535", "The host ports containers may publish, LOW-HIGH."],
        ["reserved-ports", None, "", "Host ports never published, comma-separated (the control plane's on this host)."],
        ["fast-path", None, None,
         "Private internals of Twisted and autobahn for speed: on, off, or auto (on with the releases it was "
         "tested with) [default: $CSVC_FAST_PATH, else auto]."],
    ]

    def postOptions(self):
        if not self["enroll-token"] and self["enroll-token-file"]:
            try:
                with open(self["enroll-token-file"], encoding="utf-8") as f:
                    self["enroll-token"] = f.read(4096).strip()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise usage.UsageError(f"--enroll-token-file: {exc}") from None
        self.identity = None
        if self["ca-cert"]:
            try:
                self.host, self.port = parse_connect(self["connect"])
            except IdentityError as exc:
                raise usage.UsageError(str(exc)) from None
            self.identity = AgentIdentity(self["state-dir"], self["ca-cert"])
            if self.identity.certificate() is not None:
                # Known by its certificate: no token needed.
                return self._check()
        if not self["enroll-token"]:
            raise usage.UsageError("--enroll-token (or $CSVC_ENROLL_TOKEN, or --enroll-token-file) is required")
        self._check()

    def _check(self):
        if self["engine"] not in ("docker", "lxc"):
            raise usage.UsageError(f"--engine {self['engine']!r}: only 'docker' and 'lxc' are supported")
        if self["capacity"] < 1:
            raise usage.UsageError("--capacity must be at least 1")
        if self["instance-firewall"] not in ("on", "off", "auto"):
            raise usage.UsageError(f"--instance-firewall {self['instance-firewall']!r}: on, off or auto")
        self["fast-path"] = self["fast-path"] or fastpath.default_mode()
        if self["fast-path"] not in fastpath.MODES:
            raise usage.UsageError(f"--fast-path {self['fast-path']!r}: on, off or auto")
        try:
            self["port-rules"] = PortRules.from_options(
                self["published-address"], self["published-ports"],
                [endpoint_port(self["connect"])] + reserved_ports(self["reserved-ports"]))
        except ValueError as exc:
            raise usage.UsageError(f"--published-address / --published-ports: {exc}") from None


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


def _forget_token_file(path):
    """
    The enrollment token was used: it is of no use to anyone now, its file
    goes (when the agent may remove it).
    """
    if not path:
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        Logger().warn("could not remove the used enrollment token file {path}: {why}", path=path, why=str(exc))


def make_engine(options, reactor, firewall=None):
    if options["engine"] == "lxc":
        from csvc.agent.lxc_engine import LxcEngine

        return LxcEngine(reactor, options["lxc-path"])
    from csvc.agent.docker_engine import DockerEngine

    return DockerEngine(reactor, options["docker-socket"], port_rules=options.get("port-rules"), firewall=firewall)


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    firewall = None
    if options["engine"] == "docker":
        firewall = instance_firewall(reactor, options["instance-firewall"])
    engine = make_engine(options, reactor, firewall)
    core = AgentCore(
        engine,
        options["enroll-token"],
        options["capacity"],
        options["hostname"],
        follower_factory=OutputFollower,
        clock=reactor,
        identity=getattr(options, "identity", None),
        on_enrolled=lambda: _forget_token_file(options["enroll-token-file"]),
    )
    top = MultiService()
    fastpath.FastPathSwitch(options.get("fast-path")).setServiceParent(top)
    process.Tuning(reactor).setServiceParent(top)
    if firewall is not None:
        FirewallService(firewall).setServiceParent(top)
    EngineService(engine, EngineEvents(engine, core, reactor)).setServiceParent(top)
    factory = Factory.forProtocol(lambda: AgentProtocol(core, reactor))
    if getattr(options, "identity", None) is not None:
        endpoint = IdentityEndpoint(reactor, options.host, options.port, options.identity)
    else:
        endpoint = clientFromString(reactor, options["connect"])
    ClientService(
        endpoint,
        factory,
        retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=10.0),
        clock=reactor,
    ).setServiceParent(top)
    return top
