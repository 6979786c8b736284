"""
``twistd csvc``: the control plane's options and wiring.
"""

import os
import re
from dataclasses import dataclass

import txaio

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.python import usage
from twisted.web.client import Agent, HTTPConnectionPool
from treq.client import HTTPClient

from csvc import config, process
from csvc.api.auth import TokenAuth
from csvc.fastpath import FastPathSwitch
from csvc.wire.port_rules import listening_port
from csvc.api.docker import DockerAPI
from csvc.api.docker_events import DockerEvents
from csvc.api.front import BodyLimits, FrontSite
from csvc.api.keystone import keystone_auth
from csvc.api.native import NativeAPI
from csvc.api.root import APIRoot
from csvc.compute.networks import ProjectNetworks
from csvc.compute.images import ProjectImages, PublicImages
from csvc.compute.registries import RegistryPolicy
from csvc.compute.service import ContainerService
from csvc.notify.destinations import CheckedEndpoints, Destinations
from csvc.notify.notifier import ExistsAudit, Notifier
from csvc.notify.sinks import JsonLinesSink, ThreadExecutor
from csvc.notify.subscriptions import Subscriptions
from csvc.notify.webhook import WebhookSink
from csvc.providers.local import LocalProvider
from csvc.providers.netns import NetworkNamespaces
from csvc.scheduler.health import HeartbeatMonitor
from csvc.scheduler.instances import InstanceMap
from csvc.scheduler.placement import Placement
from csvc.scheduler.reaper import IdleReaper
from csvc.agents import tls as agenttls
from csvc.agents.hub import AgentHub, AgentLink
from csvc.relay.attach import Relay
from csvc.relay.throttle import Throttle
from csvc.stdio.journal import Journal
from csvc.store.db import Store, make_engine, upgrade


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "Config file (TOML; keys are the option names below)."],
        ["data-dir", None, None, "Data directory [default: ./var]."],
        ["database", None, None, "Database URL [default: SQLite in the data dir]."],
        ["output-store", None, None, "Container output in 'files' under the data dir or 'db' rows [default: files]."],
        ["output-cache", None, None,
         "MiB of each container's newest output left in the page cache; -1 = no limit [default: 32]."],
        ["output-retention-mib", None, None,
         "MiB of output each container keeps, its oldest dropped past it; -1 = unlimited [default: 1024]."],
        ["api", None, None, "API endpoint [default: tcp:8780:interface=127.0.0.1]."],
        ["agents", None, None, "Agent endpoint [default: tcp:8781:interface=127.0.0.1]."],
        ["agents-tls-dir", None, None,
         "TLS on the agent endpoint (tcp:) with this csvc-manage tls directory; agents need its client certificates."],
        ["provider", None, None, "Instance provider: local, static or nova [default: local]."],
        ["instances", None, None, "Local instances to run [default: 1]."],
        ["instance-capacity", None, None, "Containers per local instance [default: 10]."],
        ["instance-memory", None, None, "MiB of memory per local instance [default: this machine's]."],
        ["instance-netns", None, None,
         "Each local agent in its own network namespace on this IPv4 network, e.g. 10.213.0.0/24 (root) [off]."],
        ["instance-cpus", None, None, "Cores per local instance [default: this machine's]."],
        ["instance-grace", None, None, "Seconds an instance created for a project may stay empty [default: 300]."],
        ["instance-wait", None, None, "Seconds a create waits for a new instance's agent [default: 60]."],
        ["agent-restart-delay", None, None, "Seconds before a dead local agent is restarted [default: 1]."],
        ["heartbeat-interval", None, None, "Seconds between agent heartbeats [default: 5]."],
        ["orphan-action", None, None,
         "Engine containers made for an instance that csvc has no record of: 'log' or 'remove' [default: log]."],
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
        ["keystone-admin-project", None, None,
         "Project (id or name) whose Keystone admin role makes a csvc admin, besides system scope [none]."],
        ["keystone-admin-project-domain", None, None, "That project's domain, for a name [default: Default]."],
        ["keystone-validations", None, None, "Keystone token validations at once [default: 4]."],
        ["keystone-validation-queue", None, None, "Validations waiting for one of those; past it 503 [default: 64]."],
        ["api-max-upload", None, None, "MiB a Docker archive upload may carry (other bodies: 1 MiB) [default: 1024]."],
        ["agent-register-timeout", None, None, "Seconds a new agent connection has to register [default: 10]."],
        ["quota-containers", None, None, "Containers per project unless its quota says [default: 100; -1 unlimited]."],
        ["quota-memory", None, None, "MiB of memory per project unless its quota says [default: 65536]."],
        ["quota-cpu", None, None, "CPUs per project unless its quota says [default: 64]."],
        ["quota-attach-sessions", None, None, "Open attach sessions per project unless its quota says [default: 50]."],
        ["quota-networks", None, None, "Networks per project unless its quota says [default: 8]."],
        ["quota-output", None, None,
         "MiB of output a project's containers keep together unless its quota says [default: 10240]."],
        ["notifications-log", None, None, "JSON-lines notification log, or off [default: DATA-DIR/notifications.jsonl]."],
        ["notifications-exists-interval", None, None, "Seconds between compute.container.exists rounds; 0: never [3600]."],
        ["notifications-webhook-attempts", None, None, "Attempts per webhook notification before it is dropped [5]."],
        ["notifications-webhook-timeout", None, None, "Seconds a webhook receiver has to answer [default: 10]."],
        ["notifications-webhook-queue", None, None, "Notifications waiting per webhook; the oldest go first [1000]."],
        ["stop-timeout-max", None, None, "Longest grace in seconds of a stop or restart; longer is clamped [600]."],
        ["exec-output-max", None, None, "MiB a non-interactive exec's answer collects; past it a 413 [default: 1]."],
        ["default-pids-limit", None, None, "Pids limit of every container; a member's at most this; 0: none [4096]."],
        ["default-memory", None, None, "MiB of memory of a container created without a limit; 0: none [512]."],
        ["drop-net-raw", None, None, "on: every container without NET_RAW unless an admin adds it [on]."],
        ["no-new-privileges", None, None, "on: every container with no-new-privileges unless an admin says [on]."],
        ["registry-allow-private", None, None,
         "Internal networks image pulls may reach after all, CIDRs comma-separated (e.g. 127.0.0.0/8) [none]."],
        ["public-images", None, None,
         "Images every project may use: references, prefixes ending in *, comma-separated [unpulled ones]."],
        ["webhook-allow-internal", None, None,
         "Internal networks webhooks may go to after all, CIDRs comma-separated (e.g. 127.0.0.0/8) [none]."],
        ["nova-cloud", None, None, "clouds.yaml cloud of the Nova credentials (provider nova)."],
        ["nova-auth-url", None, None, "Keystone URL for Nova, e.g. https://keystone:5000/v3 (provider nova)."],
        ["nova-username", None, None, "Keystone user that creates the servers (provider nova)."],
        ["nova-password", None, None, "That user's password (provider nova; better in the config file)."],
        ["nova-project", None, None, "The project the servers are made in (provider nova)."],
        ["nova-user-domain", None, None, "That user's domain name [default: Default]."],
        ["nova-project-domain", None, None, "That project's domain name [default: Default]."],
        ["nova-flavor", None, None, "Flavor id of the servers (provider nova)."],
        ["nova-image", None, None, "Image id of the servers (provider nova; python3 and Docker, or apt)."],
        ["nova-network", None, None, "Network uuid of the servers (provider nova)."],
        ["nova-key", None, None, "Key pair name for the servers [default: none]."],
        ["nova-agent-connect", None, None, "The agents endpoint as servers reach it, e.g. tcp:203.0.113.5:8781."],
        ["nova-agent-package", None, None, "What pip installs on a server for csvc-agent [default: csvc]."],
        ["nova-timeout", None, None, "Seconds to wait for a server to be ACTIVE, or gone [default: 300]."],
        ["fast-path", None, None,
         "Private internals of Twisted and autobahn for speed: on, off, or auto (on with the releases it was "
         "tested with) [default: $CSVC_FAST_PATH, else auto]."],
    ]

    def postOptions(self):
        given = {key: self[key] for key in config.DEFAULTS}
        try:
            self.settings = config.resolve(given, self["config"])
        except config.ConfigError as exc:
            raise usage.UsageError(str(exc)) from None
        agents, tls_dir = self.settings["agents"], self.settings["agents-tls-dir"]
        if tls_dir and not agents.startswith("tcp"):
            raise usage.UsageError("--agents-tls-dir wraps a tcp: agents endpoint in TLS itself")
        local = self.settings["provider"] == "local" and self.settings["instances"] > 0
        if agents.startswith("ssl:") and local:
            raise usage.UsageError(
                "local instances cannot dial an ssl: agents endpoint: use --agents-tls-dir, or --instances 0"
            )
        network = self.settings["instance-netns"]
        if network is not None:
            _check_netns(network, agents, local)
        if self.settings["provider"] == "nova":
            from csvc.providers.nova import check_settings

            problem = check_settings(self.settings)
            if problem:
                raise usage.UsageError(problem)


def _check_netns(network, agents, local):
    """
    Agents in their own namespaces dial the network's first address: the
    agent port must listen there (or everywhere).
    """
    gateway = str(network.network_address + 1)
    if not local:
        raise usage.UsageError("--instance-netns is for local instances (--provider local, --instances 1 or more)")
    if os.geteuid() != 0:
        raise usage.UsageError("--instance-netns makes network namespaces and needs root (CAP_NET_ADMIN)")
    match = re.match(r"^tcp:(?:port=)?\d+(?::.*)?$", agents)
    interface = re.search(r":interface=([^:]+)", agents)
    if not match or interface is None or interface.group(1) not in (gateway, "0.0.0.0"):
        raise usage.UsageError(
            f"--instance-netns {network}: the agents reach the agent port at {gateway}; listen there, "
            f"e.g. --agents tcp:8781:interface={gateway}"
        )


class Listener(Service):
    """
    Listens on an endpoint; ``listening`` fires with the bound address (so
    port 0 works, and the local provider can tell its agents where to dial).
    """

    def __init__(self, endpoint, factory, after=None, listening=None):
        """
        ``after``: a Deferred to wait for before listening (the address to
        listen on being made), or None; ``listening``: the Deferred to fire
        with the bound address (given by whoever waits for it), or None for
        a new one.
        """
        self._endpoint = endpoint
        self._factory = factory
        self._after = after
        self._port = None
        self.listening = Deferred() if listening is None else listening

    def startService(self):
        Service.startService(self)
        if self._after is not None:
            d = self._after.addCallback(lambda _: self._endpoint.listen(self._factory))
        else:
            d = self._endpoint.listen(self._factory)

        def bound(port):
            self._port = port
            self.listening.callback(port.getHost())

        d.addCallbacks(bound, self.listening.errback)

    def stopService(self):
        Service.stopService(self)
        if self._port is not None:
            return self._port.stopListening()


class Startup(Service):
    """
    The control plane's start-up work, started before its other services:
    the data directory, the schema's migrations and the output store's
    preparation.  Blocking: twistd starts the services before the reactor
    runs, and nothing listens yet.
    """

    def __init__(self, data_dir, store):
        self._data_dir = data_dir
        self._store = store

    def startService(self):
        Service.startService(self)
        # autobahn logs every frame at debug level through txaio.
        txaio.use_twisted()
        txaio.set_global_log_level("info")
        os.makedirs(self._data_dir, exist_ok=True)
        upgrade(self._store.engine)
        # Before any agent can connect.
        self._store.prepare_output()


@dataclass(frozen=True)
class ControlPlane:
    """
    The control plane as ``build`` wires it: ``service`` runs it (what
    ``makeService`` gives twistd); the other fields are the same objects,
    for tests and benches that drive it.
    """

    service: MultiService
    store: Store
    journal: Journal
    hub: AgentHub
    notifier: Notifier
    subscriptions: Subscriptions
    containers: ContainerService
    placement: Placement
    instances: InstanceMap
    providers: dict
    relay: Relay
    api: NativeAPI
    docker_api: DockerAPI
    api_listener: Listener
    agents_listener: Listener


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    settings = options.settings if hasattr(options, "settings") else options
    return build(settings, reactor).service


def build(settings, reactor):
    """
    The control plane for ``settings`` (``Options().settings``) on
    ``reactor``: every object made with its collaborators, in an order
    where each exists before what uses it.  Nothing is done: the work of
    starting is ``Startup``'s, and every service's own ``startService``.
    """
    output_dir = None
    if settings["output-store"] == "files":
        output_dir = os.path.join(os.path.abspath(settings["data-dir"]), "output")
    cache = settings["output-cache"]
    retention = settings["output-retention-mib"]
    store = Store(make_engine(settings["database"]), reactor, quota_defaults=config.quota_defaults(settings),
                  output_dir=output_dir, output_cache=None if cache < 0 else cache * 1024 * 1024,
                  output_retention=None if retention < 0 else retention * 1024 * 1024)
    journal = Journal(store)
    # Docker's /events: a notification sink of its own.
    docker_events = DockerEvents(reactor)
    notifier, subscriptions = _notifications(settings, store, reactor, docker_events)
    tls_dir = settings.get("agents-tls-dir")
    hub = AgentHub(
        store, journal, reactor, heartbeat_interval=settings["heartbeat-interval"],
        orphan_action=settings["orphan-action"],
        # With the CA's key there, agents enroll for certificates of their own.
        authority=agenttls.AgentAuthority.from_directory(tls_dir, reactor) if tls_dir else None,
        # As long as the heartbeat monitor waits for agents after a start.
        start_window=HeartbeatMonitor.startup_for(settings["heartbeat-interval"]),
    )
    netns = None
    if settings.get("instance-netns") is not None:
        netns = NetworkNamespaces(reactor, settings["instance-netns"])
    # Fired by the agents' listener with its address; the local provider
    # starts its agents then.
    agents_address = Deferred()
    providers = {}
    if settings["provider"] == "local" and settings["instances"] > 0:
        local = LocalProvider(
            store, agents_address, settings["instances"], settings["instance-capacity"], reactor, tls_dir=tls_dir,
            restart_delay=settings["agent-restart-delay"], memory=settings["instance-memory"],
            cpus=settings["instance-cpus"], hub=hub, start_wait=settings["instance-wait"], netns=netns,
            notifier=notifier,
            # (this host's: no container publishes the API's or the agents' port)
            reserved_ports=(listening_port(settings["api"]), listening_port(settings["agents"])),
        )
        providers[local.name] = local
    if settings["provider"] == "nova":
        providers["nova"] = _nova_provider(settings, store, reactor, notifier)
    # No provider (static): placement has nobody to ask for instances.
    placement = Placement(store, hub, next(iter(providers.values()), None), reactor, wait=settings["instance-wait"])
    images = ProjectImages(store, hub, PublicImages(settings["public-images"]))
    containers = ContainerService(store, journal, hub, reactor, placement=placement,
                                  stop_timeout_max=settings["stop-timeout-max"],
                                  exec_output_max=settings["exec-output-max"] * 1024 * 1024, notifier=notifier,
                                  confinement=config.confinement(settings), images=images)
    instances = InstanceMap(store, hub, containers, providers)
    throttle = Throttle(reactor, global_rate=settings["relay-rate"], session_rate=settings["session-rate"])
    relay = Relay(containers, journal, store, reactor, throttle=throttle, allowed_origins=settings["allowed-origins"],
                  idle_timeout=settings["attach-idle-timeout"])
    auth = keystone_auth(settings, reactor) if settings["auth"] == "keystone" else TokenAuth(store)
    networks = ProjectNetworks(store, hub)
    api = NativeAPI(auth, containers, store, journal, relay, subscriptions=subscriptions, instances=instances,
                    networks=networks)
    registries = RegistryPolicy(reactor.nameResolver, reactor, allow=settings["registry-allow-private"])
    docker_api = DockerAPI(auth, containers, store, journal, hub, relay, reactor, registries=registries,
                           events=docker_events, networks=networks, images=images)
    site = FrontSite(APIRoot(api.resource(), docker_api.resource()), reactor=reactor,
                     body_limits=BodyLimits(upload=settings["api-max-upload"] * 1024 * 1024))
    api_listener = Listener(serverFromString(reactor, settings["api"]), site)
    # Each agent's link reports its containers to the container service.
    agent_factory = Factory.forProtocol(
        lambda: AgentLink(hub, journal, containers, clock=reactor, register_timeout=settings["agent-register-timeout"])
    )
    if tls_dir:
        agent_factory = agenttls.server_factory(tls_dir, agent_factory)
    agents_listener = Listener(serverFromString(reactor, settings["agents"]), agent_factory,
                               after=netns.when_ready() if netns is not None else None, listening=agents_address)

    # Started in this order, stopped in the reverse one.
    top = MultiService()
    FastPathSwitch(settings.get("fast-path")).setServiceParent(top)
    process.Tuning(reactor).setServiceParent(top)
    Startup(settings["data-dir"], store).setServiceParent(top)
    store.setServiceParent(top)
    # After the store (it loads the subscriptions), stopped before it.
    notifier.setServiceParent(top)
    if settings["notifications-exists-interval"] > 0:
        ExistsAudit(store, notifier, settings["notifications-exists-interval"], reactor).setServiceParent(top)
    if isinstance(auth, Service):
        auth.setServiceParent(top)
    api_listener.setServiceParent(top)
    if netns is not None:
        # Before the agent listener (which listens on its gateway once it is
        # there), so stopped after the agents.
        netns.setServiceParent(top)
    agents_listener.setServiceParent(top)
    for provider in providers.values():
        provider.setServiceParent(top)
    HeartbeatMonitor(store, hub, containers.lifecycle, reactor, settings["heartbeat-interval"]).setServiceParent(top)
    IdleReaper(store, instances, placement, providers, reactor, settings["instance-grace"]).setServiceParent(top)
    return ControlPlane(
        service=top, store=store, journal=journal, hub=hub, notifier=notifier, subscriptions=subscriptions,
        containers=containers, placement=placement, instances=instances, providers=providers, relay=relay,
        api=api, docker_api=docker_api, api_listener=api_listener, agents_listener=agents_listener,
    )


def _nova_provider(settings, store, reactor, notifier):
    """
    Instances as Nova servers (``--provider nova``).
    """
    from csvc.providers import nova

    template = nova.ServerTemplate(
        flavor=settings["nova-flavor"],
        image=settings["nova-image"],
        network=settings["nova-network"],
        key_name=settings["nova-key"],
        agent_connect=settings["nova-agent-connect"],
        agent_package=settings["nova-agent-package"],
        ca_pem=nova.agents_ca(settings),
    )
    compute = nova.NovaCompute(nova.connection_factory(settings))
    return nova.NovaProvider(store, compute, template, settings["instance-capacity"], reactor,
                             timeout=settings["nova-timeout"], notifier=notifier)


def _notifications(settings, store, reactor, docker_events):
    """
    The notifier with its sinks: the JSON-lines log (unless off), the
    projects' webhooks, POSTed by treq over the notifier's own connection
    pool, and Docker's /events (``docker_events``).
    """
    destinations = Destinations(reactor.nameResolver, settings["webhook-allow-internal"], clock=reactor)
    subscriptions = Subscriptions(store, destinations)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 2
    # Every connection goes to an address checked at that moment (DNS can
    # change after the subscription was made).
    endpoints = CheckedEndpoints(reactor, destinations, connect_timeout=settings["notifications-webhook-timeout"])
    http = HTTPClient(Agent.usingEndpointFactory(reactor, endpoints, pool=pool))
    sinks = []
    if settings["notifications-log"]:
        sinks.append(JsonLinesSink(settings["notifications-log"], ThreadExecutor(reactor, "csvc-notify-log")))
    sinks.append(
        WebhookSink(
            subscriptions, http.post, reactor,
            max_queue=settings["notifications-webhook-queue"],
            attempts=settings["notifications-webhook-attempts"],
            timeout=settings["notifications-webhook-timeout"],
        )
    )
    sinks.append(docker_events)
    return Notifier(reactor, sinks, subscriptions), subscriptions


__all__ = ["ControlPlane", "Options", "Startup", "build", "makeService", "strports"]
