"""
``twistd csvc``: the control plane's options and wiring.
"""

import os

import txaio

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from csvc import config
from csvc.api.auth import TokenAuth
from csvc.api.docker import DockerAPI
from csvc.api.keystone import keystone_auth
from csvc.api.native import NativeAPI
from csvc.api.root import APIRoot
from csvc.compute.service import ContainerService
from csvc.providers.local import LocalProvider
from csvc.relay.agentlink import AgentHub, AgentLink
from csvc.relay.attach import Relay
from csvc.relay.throttle import Throttle
from csvc.stdio.journal import Journal
from csvc.store.db import Store, make_engine, upgrade


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "Config file (TOML; keys are the option names below)."],
        ["data-dir", None, None, "Data directory [default: ./var]."],
        ["database", None, None, "Database URL [default: SQLite in the data dir]."],
        ["api", None, None, "API endpoint [default: tcp:8780:interface=127.0.0.1]."],
        ["agents", None, None, "Agent endpoint [default: tcp:8781:interface=127.0.0.1]."],
        ["provider", None, None, "Instance provider: local or static [default: local]."],
        ["instances", None, None, "Local instances to run [default: 1]."],
        ["instance-capacity", None, None, "Containers per local instance [default: 10]."],
        ["heartbeat-interval", None, None, "Seconds between agent heartbeats [default: 5]."],
        ["relay-rate", None, None, "Bytes per second for all attach sessions together [default: off]."],
        ["session-rate", None, None, "Bytes per second for each attach session [default: off]."],
        ["allowed-origins", None, None, "Comma-separated browser origins allowed besides the API's own."],
        ["attach-idle-timeout", None, None, "Seconds without traffic before an attach closes; 0: never [3600]."],
        ["auth", None, None, "Authentication: token (csvc-manage token create) or keystone [default: token]."],
        ["keystone-url", None, None, "Keystone's identity API, e.g. http://127.0.0.1:5000/v3/ (auth keystone)."],
        ["keystone-username", None, None, "The service's own Keystone user (auth keystone)."],
        ["keystone-password", None, None, "That user's password (auth keystone; better in the config file)."],
        ["keystone-project", None, None, "The project the service user is scoped to (auth keystone)."],
        ["keystone-user-domain", None, None, "The service user's domain name [default: Default]."],
        ["keystone-project-domain", None, None, "The service project's domain name [default: Default]."],
        ["auth-cache-ttl", None, None, "Seconds a Keystone token validation is cached [default: 60]."],
        ["quota-containers", None, None, "Containers per project unless its quota says [default: 100; -1 unlimited]."],
        ["quota-memory", None, None, "MiB of memory per project unless its quota says [default: 65536]."],
        ["quota-cpu", None, None, "CPUs per project unless its quota says [default: 64]."],
        ["quota-attach-sessions", None, None, "Open attach sessions per project unless its quota says [default: 50]."],
    ]

    def postOptions(self):
        given = {key: self[key] for key in config.DEFAULTS}
        try:
            self.settings = config.resolve(given, self["config"])
        except config.ConfigError as exc:
            raise usage.UsageError(str(exc)) from None


class AgentListener(Service):
    """
    Listens for agents; ``listening`` fires with the bound address (so port 0
    works, and the local provider can tell its agents where to dial).
    """

    log = Logger()

    def __init__(self, endpoint, factory):
        self._endpoint = endpoint
        self._factory = factory
        self._port = None
        self.listening = Deferred()

    def startService(self):
        Service.startService(self)
        d = self._endpoint.listen(self._factory)

        def bound(port):
            self._port = port
            self.listening.callback(port.getHost())

        d.addCallbacks(bound, self.listening.errback)

    def stopService(self):
        Service.stopService(self)
        if self._port is not None:
            return self._port.stopListening()


class APIListener(Service):
    """
    The API endpoint; ``listening`` fires with the bound address.
    """

    def __init__(self, endpoint, site):
        self._endpoint = endpoint
        self._site = site
        self._port = None
        self.listening = Deferred()

    def startService(self):
        Service.startService(self)
        d = self._endpoint.listen(self._site)

        def bound(port):
            self._port = port
            self.listening.callback(port.getHost())

        d.addCallbacks(bound, self.listening.errback)

    def stopService(self):
        Service.stopService(self)
        if self._port is not None:
            return self._port.stopListening()


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    # autobahn logs every frame at debug level through txaio.
    txaio.use_twisted()
    txaio.set_global_log_level("info")
    settings = options.settings if hasattr(options, "settings") else options
    os.makedirs(settings["data-dir"], exist_ok=True)
    engine = make_engine(settings["database"])
    # The reactor is not running yet: migrating here blocks nothing.
    upgrade(engine)

    store = Store(engine, reactor, quota_defaults=config.quota_defaults(settings))
    journal = Journal(store)
    hub = AgentHub(store, journal, heartbeat_interval=settings["heartbeat-interval"])
    containers = ContainerService(store, journal, hub, reactor)
    throttle = Throttle(reactor, global_rate=settings["relay-rate"], session_rate=settings["session-rate"])
    relay = Relay(containers, journal, store, throttle=throttle, allowed_origins=settings["allowed-origins"],
                  idle_timeout=settings["attach-idle-timeout"])
    auth = keystone_auth(settings, reactor) if settings["auth"] == "keystone" else TokenAuth(store)
    api = NativeAPI(auth, containers, store, journal, relay)

    top = MultiService()
    store.setServiceParent(top)
    if isinstance(auth, Service):
        auth.setServiceParent(top)
    docker_api = DockerAPI(auth, containers, store, journal, hub, relay, reactor)
    site = Site(APIRoot(api.resource(), docker_api.resource()))
    site.displayTracebacks = False
    top.api = APIListener(serverFromString(reactor, settings["api"]), site)
    top.api.setServiceParent(top)
    agents = AgentListener(
        serverFromString(reactor, settings["agents"]),
        Factory.forProtocol(lambda: AgentLink(hub, journal)),
    )
    agents.setServiceParent(top)
    top.agents = agents
    if settings["provider"] == "local" and settings["instances"] > 0:
        LocalProvider(store, agents, settings["instances"], settings["instance-capacity"], reactor).setServiceParent(top)
    return top


__all__ = ["Options", "makeService", "strports"]
