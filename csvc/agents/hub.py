"""
The control plane's end of the agent links: which instance each connected
agent is, calls to it, and the boxes agents send (output, starts, exits).
"""

from cryptography import x509
from twisted.internet.defer import Deferred, TimeoutError, fail, gatherResults, inlineCallbacks, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols import amp

from csvc.wire import commands
from csvc.fastpath.boxes import FastBoxes
from csvc.agents.tls import EnrollmentRefused, fingerprint
from csvc.agents.execs import ExecRegistry
from csvc.agents.link_states import DROPPED, REGISTERED, UNREGISTERED, link_step
from csvc.agents.transfers import TransferRegistry

#: Bytes read from an agent link at once (Twisted reads 64 KiB).
RECV_SIZE = 512 * 1024
#: Bytes a connection may send before it has registered: a Register box
#: (its two JSON values at most 64 KiB each) with room to spare.
PREREGISTER_BYTES = 256 * 1024
#: Seconds a connection has to register (``agent-register-timeout``).
REGISTER_TIMEOUT = 10.0


def _peer_host(link):
    transport = getattr(link, "transport", None)
    peer = transport.getPeer() if transport is not None else None
    return getattr(peer, "host", None) or None


def _reported_size(instance, facts):
    """
    The instance's memory (MiB) and cpus as its agent reports its host
    (``MemTotal`` in bytes, ``NCPU``), for the columns that take them: an
    operator's host (provider ``static``) is what its agent says; an
    instance a provider sized (the local settings, a Nova flavor) keeps that
    size, unless it has none yet (made before sizes were kept).
    """
    values = {}
    memory, cpus = facts.get("MemTotal"), facts.get("NCPU")
    own = instance["provider"] == "static"
    if isinstance(memory, int) and memory > 0 and (own or instance.get("memory") is None):
        values["memory"] = memory // (1024 * 1024)
    if isinstance(cpus, (int, float)) and cpus > 0 and (own or instance.get("cpus") is None):
        values["cpus"] = float(cpus)
    return values


class InstanceUnavailable(Exception):
    """
    The instance's agent is not connected.
    """


class LinkLostDuringCall(InstanceUnavailable):
    """
    The agent's link broke after the call was sent and before its answer:
    the agent may or may not have acted on it.
    """


class AgentHub:
    """
    The connected agents, by instance uuid, and the container -> instance
    ownership that decides what each agent may report on.
    """

    log = Logger()

    def __init__(self, store, journal, clock, heartbeat_interval=5.0, orphan_action="log", authority=None,
                 start_window=None):
        """
        ``authority``: see ``self.authority``; ``start_window``: seconds from
        now during which calls wait for agents not registered yet (see
        ``expect_agents``), or None.
        """
        #: What a registration does with engine containers made for the
        #: instance that the store has no row of: "log" or "remove"
        #: (``orphan-action``, csvc/config.py).
        self.orphan_action = orphan_action
        self._store = store
        self._journal = journal
        self._clock = clock
        self.heartbeat_interval = heartbeat_interval
        self._links = {}
        self._owner = {}
        self._names = {}
        self._facts = {}
        #: instance uuid -> Deferreds waiting for its agent to register
        self._registering = {}
        self.execs = ExecRegistry()
        #: downloads from agents in flight (csvc.agents.transfers)
        self.transfers = TransferRegistry()
        #: instance uuid -> the address its agent connected from
        self._addresses = {}
        #: instance uuid -> the hostname its agent registered with
        self._hostnames = {}
        #: calls to an instance not connected yet wait for its agent until
        #: then (``expect_agents``); None = no start window
        self._expecting = None
        if start_window is not None:
            self.expect_agents(start_window)
        #: ``csvc.agents.tls.AgentAuthority`` where the control plane is
        #: the agents' CA (its TLS directory holds ``ca.key``): enrollment
        #: tokens are then single-use, and agents register by certificate.
        self.authority = authority

    def connected_instances(self):
        return set(self._links)

    def when_registered(self, instance_uuid):
        """
        A Deferred that fires once the instance's agent has registered (at
        once when it is connected); cancelling it stops the wait.
        """
        if instance_uuid in self._links:
            return succeed(None)
        waiting = self._registering.setdefault(instance_uuid, [])

        def cancel(d):
            if d in waiting:
                waiting.remove(d)

        d = Deferred(cancel)
        waiting.append(d)
        return d

    def notify_registered(self, instance_uuid):
        """
        The instance's agent registered: wake whoever waits for it.
        """
        for d in self._registering.pop(instance_uuid, []):
            d.callback(None)

    def drop(self, instance_uuid, why):
        """
        Close the instance's link (an agent that stopped answering heartbeats,
        an instance being removed).
        """
        link = self._links.get(instance_uuid)
        if link is None:
            return
        self.log.warn("dropping the agent of instance {name}: {why}", name=self._names.get(instance_uuid), why=why)
        transport = link.transport
        (getattr(transport, "abortConnection", None) or transport.loseConnection)()

    def name_of(self, instance_uuid):
        return self._names.get(instance_uuid, instance_uuid)

    def assign(self, container_uuid, instance_uuid):
        self._owner[container_uuid] = instance_uuid

    def unassign(self, container_uuid):
        self._owner.pop(container_uuid, None)

    def expect_agents(self, seconds):
        """
        The control plane has just started: for ``seconds``, a call to an
        instance whose agent has not registered yet waits for it (agents
        reconnect within a few seconds of a restart) instead of failing.
        """
        self._expecting = self._clock.seconds() + seconds

    def is_connected(self, instance_uuid):
        return instance_uuid in self._links

    def call(self, instance_uuid, command, **kwargs):
        """
        Call ``command`` on the instance's agent.  When it is not connected:
        within the start window (``expect_agents``) wait for it, else fail
        with InstanceUnavailable at once.
        """
        link = self._links.get(instance_uuid)
        if link is None:
            return self._call_once_registered(instance_uuid, 0, command, kwargs)

        def lost(failure):
            failure.trap(ConnectionLost, ConnectionDone)
            name = self._names.get(instance_uuid, instance_uuid)
            raise LinkLostDuringCall(f"instance {name} disconnected before answering {command.__name__}")

        return link.callRemote(command, **kwargs).addErrback(lost)

    def call_waiting(self, instance_uuid, patience, command, **kwargs):
        """
        As ``call``, but an agent that is not connected is waited for up to
        ``patience`` seconds (or to the end of the start window, if that is
        later): for a call that must reach the engine in the end, such as a
        delete, rather than fail while an agent reconnects.
        """
        if self.is_connected(instance_uuid):
            return self.call(instance_uuid, command, **kwargs)
        return self._call_once_registered(instance_uuid, patience, command, kwargs)

    def _call_once_registered(self, instance_uuid, patience, command, kwargs):
        name = self._names.get(instance_uuid, instance_uuid)
        window = 0
        if self._expecting is not None:
            window = self._expecting - self._clock.seconds()
            if window <= 0:
                self._expecting = None
        wait = max(patience, window)
        if wait <= 0 or instance_uuid is None:
            return fail(InstanceUnavailable(f"instance {name} is not connected"))
        waiting = self.when_registered(instance_uuid)
        waiting.addTimeout(wait, self._clock)

        def late(failure):
            failure.trap(TimeoutError)
            if window >= patience:
                why = "its agent has not registered since the control plane started"
            else:
                why = f"its agent did not register within {patience:g} s"
            raise InstanceUnavailable(f"instance {self._names.get(instance_uuid, instance_uuid)} is not connected: {why}")

        def registered(_):
            # Registration wakes its waiters before its answer is sent; the
            # agent acts on calls (its output above all) only once it has
            # that answer.
            return self._after_answer(self.call, instance_uuid, command, **kwargs)

        return waiting.addCallbacks(registered, late)

    def _after_answer(self, f, *args, **kwargs):
        """
        ``f(*args, **kwargs)`` on the reactor's next turn: after the answer
        of the registration now running has gone to the agent.  Fires with
        its result.
        """
        return deferLater(self._clock, 0, f, *args, **kwargs)

    @inlineCallbacks
    def enroll(self, link, enroll_token, csr):
        """
        An agent without a certificate of its own: its instance's one-time
        token buys it one, signed by ``authority``, naming the instance.  A
        token used already, unknown or revoked is refused and logged.
        """
        if self.authority is None:
            self.log.error("agent from {peer} refused: it asks for a certificate, and this control plane has no "
                           "CA key to sign one", peer=link.peer())
            raise commands.CertificateRefused(
                "this control plane issues no certificates (its TLS directory holds no ca.key): "
                "register with the enrollment token"
            )
        instance = yield self._store.instance_by_token(enroll_token)
        if instance is None or instance["status"] in ("revoked", "deleted"):
            self.log.error("agent from {peer} refused enrollment: unknown or revoked enrollment token",
                           peer=link.peer())
            raise commands.NotEnrolled("unknown or revoked enrollment token")
        if instance["enrolled_at"] is not None:
            self._token_reused(link, instance)
        try:
            pem = self.authority.sign(csr, instance)
        except EnrollmentRefused as exc:
            self.log.error("agent of instance {name} from {peer} refused enrollment: {why}",
                           name=instance["name"], peer=link.peer(), why=str(exc))
            raise commands.CertificateRefused(str(exc)) from None
        cert = x509.load_pem_x509_certificate(pem)
        used = yield self._store.consume_enroll_token(instance["uuid"], enroll_token, fingerprint(cert))
        if not used:
            self._token_reused(link, instance)
        self.log.info(
            "instance {name} enrolled from {peer}: its certificate {sha256} is valid until {until}",
            name=instance["name"], peer=link.peer(), sha256=fingerprint(cert),
            until=cert.not_valid_after_utc.isoformat(),
        )
        return {"instance_uuid": instance["uuid"], "certificate": pem}

    def _token_reused(self, link, instance):
        self.log.error(
            "agent from {peer} refused: the enrollment token of instance {name} was used already "
            "(it is single-use; the instance's agent registers by its certificate)",
            peer=link.peer(), name=instance["name"],
        )
        raise commands.NotEnrolled("this enrollment token was used already")

    @inlineCallbacks
    def _identify(self, link, enroll_token):
        """
        The instance row of an agent that registers: by its enrollment token
        (where the control plane is no CA), else by the certificate it
        presented: one issued at enrollment names its instance; with an
        operator's (``csvc-manage tls agent``), the token's first use binds
        the instance to that certificate, and a later use needs the same.
        """
        cert = link.peer_certificate() if self.authority is not None else None
        named = None
        if cert is not None:
            try:
                named = self.authority.identify(cert)
            except EnrollmentRefused as exc:
                self.log.error("agent from {peer} refused: {why}", peer=link.peer(), why=str(exc))
                raise commands.NotEnrolled(str(exc)) from None
        if named is not None:
            instance = yield self._store.get_instance(named)
            if instance is None or instance["uuid"] != named or instance["status"] in ("revoked", "deleted"):
                self.log.error("agent from {peer} refused: its certificate names instance {uuid}, unknown, "
                               "revoked or deleted", peer=link.peer(), uuid=named)
                raise commands.NotEnrolled("this certificate's instance is unknown or revoked")
            if instance["agent_cert_sha256"] != fingerprint(cert):
                self.log.error("agent from {peer} refused: its certificate is not the one instance {name} was "
                               "last issued", peer=link.peer(), name=instance["name"])
                raise commands.NotEnrolled("this certificate was replaced or revoked")
            link.certificate_sha256 = fingerprint(cert)
            return instance
        instance = yield self._store.instance_by_token(enroll_token)
        if instance is None or instance["status"] in ("revoked", "deleted"):
            self.log.error("agent from {peer} refused: unknown or revoked enrollment token", peer=link.peer())
            raise commands.NotEnrolled("unknown or revoked enrollment token")
        if self.authority is None:
            return instance
        if cert is None:
            self.log.error("agent of instance {name} from {peer} refused: it presented no certificate, and "
                           "this control plane's agents enroll for one", name=instance["name"], peer=link.peer())
            raise commands.NotEnrolled(
                "this control plane's agents enroll for a certificate: run csvc-agent with --ca-cert"
            )
        sha256 = fingerprint(cert)
        if instance["enrolled_at"] is None:
            used = yield self._store.consume_enroll_token(instance["uuid"], enroll_token, sha256)
            if not used:
                self._token_reused(link, instance)
        elif instance["agent_cert_sha256"] != sha256:
            self._token_reused(link, instance)
        return instance

    @inlineCallbacks
    def renew(self, link, csr):
        """
        An agent registered by its certificate gets a new one (the old one
        stops working).
        """
        old = getattr(link, "certificate_sha256", None)
        if self.authority is None or old is None:
            self.log.error("agent from {peer} refused: it asks to renew a certificate it did not register by",
                           peer=link.peer())
            raise commands.CertificateRefused("only an agent registered by its certificate renews it")
        instance = yield self._store.get_instance(link.instance_uuid)
        try:
            pem = self.authority.sign(csr, instance)
        except EnrollmentRefused as exc:
            self.log.error("agent of instance {name} from {peer} refused renewal: {why}",
                           name=instance["name"], peer=link.peer(), why=str(exc))
            raise commands.CertificateRefused(str(exc)) from None
        cert = x509.load_pem_x509_certificate(pem)
        replaced = yield self._store.replace_agent_cert(instance["uuid"], old, fingerprint(cert))
        if not replaced:
            self.log.error("agent of instance {name} from {peer} refused renewal: its certificate was replaced "
                           "or revoked", name=instance["name"], peer=link.peer())
            raise commands.NotEnrolled("this certificate was replaced or revoked")
        link.certificate_sha256 = fingerprint(cert)
        self.log.info("instance {name} renewed its certificate: {sha256}, valid until {until}",
                      name=instance["name"], sha256=fingerprint(cert), until=cert.not_valid_after_utc.isoformat())
        return {"certificate": pem}

    @inlineCallbacks
    def register(self, link, enroll_token, engine, capacity, hostname, containers, facts=None):
        instance = yield self._identify(link, enroll_token)
        uuid = instance["uuid"]
        if getattr(link, "instance_uuid", None) not in (None, uuid):
            # One instance per link: else the first instance's entry would
            # stay on a link now speaking for another.
            self.log.error("agent of instance {name} at {peer} refused: it registers again as instance {other}",
                           name=self.name_of(link.instance_uuid), peer=link.peer(), other=instance["name"])
            raise commands.NotEnrolled("this link is registered as another instance")
        old = self._links.get(uuid)
        if old is not None and old is not link:
            self.log.warn("instance {name} registered again; dropping its old link", name=instance["name"])
            old.transport.loseConnection()
        self._links[uuid] = link
        self._names[uuid] = instance["name"]
        self._facts[uuid] = facts or {}
        self._addresses[uuid] = _peer_host(link)
        self._hostnames[uuid] = hostname
        link.instance_uuid = uuid
        updated = yield self._store.update_instance(
            uuid, status="active", engine=engine, capacity=capacity, hostname=hostname, last_seen_at=None,
            **_reported_size(instance, facts or {}),
        )
        if not updated:
            # Revoked between the token lookup and now.
            self.revoked(link)
            raise commands.NotEnrolled("unknown or revoked enrollment token")
        rows = yield self._store.list_containers(instance_uuid=uuid)
        busy = [row["uuid"] for row in rows if self._journal.queued_seq(row["uuid"]) > row["last_seq"]]
        if busy:
            # Output the old link sent is still on its way to the store: the
            # agent must resume after it, from the cursor stored with it, or
            # it would send those bytes again cut differently.
            yield gatherResults([self._journal.reached(u, committed=True) for u in busy])
            rows = yield self._store.list_containers(instance_uuid=uuid)
        on_engine = {c["uuid"]: c for c in containers if c.get("uuid")}
        resume = {}
        deleting = [row for row in rows if row["status"] == "deleting"]
        for row in deleting:
            self._owner[row["uuid"]] = uuid
        rows = [row for row in rows if row["status"] != "deleting"]
        for row in rows:
            self._owner[row["uuid"]] = uuid
            self._journal.known(row["uuid"], row["last_seq"])
            if row["uuid"] in on_engine:
                resume[row["uuid"]] = {"seq": row["last_seq"], "cursor": row["log_cursor"]}
                yield link.events.on_found(row, on_engine[row["uuid"]].get("state"))
            else:
                yield link.events.on_missing(row, instance["name"])
        self.log.info(
            "instance {name} registered: {n} containers, {r} resumed",
            name=instance["name"],
            n=len(containers),
            r=len(resume),
        )
        known = {row["uuid"] for row in rows + deleting}
        orphans = sorted(
            c["uuid"] for c in containers if c.get("uuid") and c.get("instance") == uuid and c["uuid"] not in known
        )
        self.notify_registered(uuid)
        if orphans:
            self._orphans_found(uuid, instance["name"], orphans)
        if deleting:
            # Deleted while this agent was away: its engine removes them.
            d = self._after_answer(link.events.finish_deletions, deleting)
            d.addErrback(lambda f: self.log.failure("finishing the deletions on {name}", f, name=instance["name"]))
        return {"instance_uuid": uuid, "resume": resume, "heartbeat_interval": self.heartbeat_interval}

    def _orphans_found(self, instance_uuid, name, orphans):
        """
        The instance's engine holds containers made for it that the store
        has no row of: left behind by a deletion that lost track of them
        (before 14011e5), or made after the backup the store was restored
        from.  Nobody can reach them through the API.  Logged; with
        ``orphan_action`` "remove", also removed from the engine (after the
        registration's answer), their output with them.
        """
        if self.orphan_action != "remove":
            self.log.warn(
                "instance {name}: its engine holds {n} container(s) made for it that csvc has no record of: "
                "{uuids} (left there: orphan-action is log)",
                name=name, n=len(orphans), uuids=", ".join(orphans),
            )
            return
        self.log.warn(
            "instance {name}: removing {n} container(s) made for it that csvc has no record of: {uuids}",
            name=name, n=len(orphans), uuids=", ".join(orphans),
        )

        def removed(_, orphan):
            self.log.info("instance {name}: orphan container {uuid} removed", name=name, uuid=orphan)

        def refused(failure, orphan):
            if failure.check(commands.NoSuchContainer):
                return
            self.log.warn("instance {name}: removing orphan container {uuid} failed: {why}",
                          name=name, uuid=orphan, why=failure.getErrorMessage())

        for orphan in orphans:
            d = self._after_answer(self.call, instance_uuid, commands.RemoveContainer, uuid=orphan, force=True)
            d.addCallbacks(removed, refused, callbackArgs=(orphan,), errbackArgs=(orphan,))

    def address_of(self, instance_uuid):
        """
        Where the instance's published ports are reached: the address its
        agent connected from, else the hostname it registered with (None
        when it has not registered since the control plane started).
        """
        return self._addresses.get(instance_uuid) or self._hostnames.get(instance_uuid)

    def engine_facts(self):
        """
        What each connected instance's engine says of itself.
        """
        return {uuid: self._facts.get(uuid, {}) for uuid in self._links}

    @inlineCallbacks
    def list_images(self, instances=None):
        """
        The images of the connected ``instances`` (None: every connected
        instance), one entry per image id.
        """
        merged = {}
        for uuid in list(self._links) if instances is None else [u for u in instances if self.is_connected(u)]:
            try:
                result = yield self.call(uuid, commands.ListImages)
            except Exception as exc:
                self.log.warn("listing images of {name} failed: {why}", name=self._names.get(uuid), why=str(exc))
                continue
            for image in result["images"]:
                merged.setdefault(image["Id"], image)
        return list(merged.values())

    @inlineCallbacks
    def image_on(self, uuid, name):
        """
        The image ``name`` (a reference, an id or id prefix) names on the
        instance's engine, or None when there is none.  Pulls go through
        ``csvc.compute.images``, to the instances a project may use.
        """
        try:
            result = yield self.call(uuid, commands.InspectImage, name=name)
        except (commands.NoSuchImage, commands.NoSuchContainer):
            return None
        except commands.EngineError as exc:
            if "No such image" in str(exc):
                return None
            raise
        return result["image"]

    def lost(self, link):
        uuid = getattr(link, "instance_uuid", None)
        if uuid is not None and self._links.get(uuid) is link:
            del self._links[uuid]
            self.log.warn("instance {name} disconnected", name=self._names.get(uuid, uuid))
            self.execs.instance_lost(
                uuid, InstanceUnavailable(f"instance {self._names.get(uuid, uuid)} disconnected during the exec")
            )
            self.transfers.instance_lost(
                uuid, InstanceUnavailable(f"instance {self._names.get(uuid, uuid)} disconnected during the transfer")
            )
            d = self._store.update_instance(uuid, status="down")
            d.addErrback(lambda f: self.log.failure("marking {uuid} down", f, uuid=uuid))

    @inlineCallbacks
    def heartbeat(self, link):
        """
        Note that the instance is alive; an instance revoked meanwhile (by
        ``csvc-manage instance revoke``) loses its link instead.
        """
        alive = yield self._store.touch_instance(link.instance_uuid)
        if not alive:
            self.revoked(link)
            raise commands.NotEnrolled("this instance has been revoked")
        return {}

    def revoked(self, link):
        uuid = link.instance_uuid
        self.log.error(
            "instance {name} is revoked: dropping its agent at {peer}", name=self._names.get(uuid, uuid), peer=link.peer()
        )
        # ``lost`` forgets the link once it is closed (and leaves the status
        # alone: a revoked instance stays revoked).
        link.transport.loseConnection()

    def check_owner(self, link, container_uuid):
        if self._owner.get(container_uuid) != getattr(link, "instance_uuid", None):
            self.log.error(
                "agent of instance {name} at {peer} refused: container {uuid} is not on its instance",
                name=self._names.get(link.instance_uuid, link.instance_uuid),
                peer=link.peer(),
                uuid=container_uuid,
            )
            raise commands.OutputRefused(f"container {container_uuid} is not on this agent's instance")


class AgentLink(FastBoxes, amp.AMP):
    """
    One agent's connection; its container reports (starts, exits,
    vanishings, and the deletions left for it at registration) go to
    ``events``.  Until it registers, it may send nothing else,
    and at most ``preregister_bytes``; a connection that has not registered
    within ``register_timeout`` seconds of ``clock`` is dropped (no clock:
    no deadline).  Its life is one state (``csvc.agents.link_states``).
    """

    log = Logger()
    #: the SHA-256 of the certificate it registered by (issued at enrollment)
    certificate_sha256 = None
    fast_commands = commands.STREAM_COMMANDS

    def __init__(self, hub, journal, events, clock=None, register_timeout=REGISTER_TIMEOUT,
                 preregister_bytes=PREREGISTER_BYTES):
        super().__init__()
        self._hub = hub
        self._journal = journal
        #: who hears the agent's container reports (``csvc.agents.events.IContainerEvents``)
        self.events = events
        self._clock = clock
        self._register_timeout = register_timeout
        self._preregister_bytes = preregister_bytes
        self._received_unregistered = 0
        self._register_deadline = None
        self._state = UNREGISTERED
        self._instance_uuid = None

    @property
    def link_state(self):
        """
        One of ``csvc.agents.link_states.LINK_STATES``.  (Not ``state``: AMP's
        box parser, a ``StatefulStringProtocol``, keeps its own under that
        name.)
        """
        return self._state

    @property
    def instance_uuid(self):
        """
        The instance the link registered as (None before).
        """
        return self._instance_uuid

    @instance_uuid.setter
    def instance_uuid(self, uuid):
        # The hub names the link's instance when it registers it.
        self._instance_uuid = uuid
        self._state = link_step(self._state, "registered")

    def connectionMade(self):
        super().connectionMade()
        # Boxes are small and answered one by one: without this, Nagle holds
        # a box behind an unacknowledged one for the peer's delayed ACK (40 ms).
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        # Output boxes are up to CHUNK_SIZE: read them in a few reads, not
        # 64 KiB at a time.
        self.transport.bufferSize = RECV_SIZE
        if self._clock is not None:
            self._register_deadline = self._clock.callLater(self._register_timeout, self._register_late)

    def _register_late(self):
        self._register_deadline = None
        if self._state == UNREGISTERED:
            self._drop_unregistered(f"it has not registered within {self._register_timeout:g} s")

    def _drop_unregistered(self, why):
        self._state = link_step(self._state, "drop")
        self.log.warn("agent connection from {peer} dropped: {why}", peer=self.peer(), why=why)
        (getattr(self.transport, "abortConnection", None) or self.transport.loseConnection)()

    def dataReceived(self, data):
        if self._state == DROPPED:
            return
        if self._state == UNREGISTERED:
            self._received_unregistered += len(data)
            if self._received_unregistered > self._preregister_bytes:
                self._drop_unregistered(
                    f"it sent more than {self._preregister_bytes} bytes before registering"
                )
                return
        super().dataReceived(data)

    def peer(self):
        return str(self.transport.getPeer()) if self.transport else "?"

    def peer_certificate(self):
        """
        The client certificate the agent presented over TLS (an
        ``x509.Certificate``), or None.
        """
        get = getattr(self.transport, "getPeerCertificate", None)
        cert = get() if get is not None else None
        return cert.to_cryptography() if cert is not None else None

    def _check_protocol(self, protocol):
        if protocol != commands.PROTOCOL:
            self.log.error(
                "agent from {peer} refused: it speaks protocol {theirs}, this control plane {ours}",
                peer=self.peer(), theirs=protocol or 1, ours=commands.PROTOCOL,
            )
            raise commands.ProtocolMismatch(
                f"the agent speaks protocol {protocol or 1}, the control plane {commands.PROTOCOL}:"
                " run the same csvc version on both"
            )

    def connectionLost(self, reason):
        if self._register_deadline is not None and self._register_deadline.active():
            self._register_deadline.cancel()
        self._register_deadline = None
        self._state = link_step(self._state, "lost")
        super().connectionLost(reason)
        self._hub.lost(self)

    def _registered(self):
        if self._state != REGISTERED:
            self.log.error("agent from {peer} refused: it has not registered", peer=self.peer())
            raise commands.NotEnrolled("register first")

    @commands.Register.responder
    def register(self, enroll_token, engine, capacity, hostname, containers, facts=None, protocol=None):
        self._check_protocol(protocol)
        return self._hub.register(self, enroll_token, engine, capacity, hostname, containers, facts)

    @commands.Enroll.responder
    def enroll(self, enroll_token, csr, protocol):
        self._check_protocol(protocol)
        return self._hub.enroll(self, enroll_token, csr)

    @commands.Renew.responder
    def renew(self, csr):
        self._registered()
        return self._hub.renew(self, csr)

    @commands.Heartbeat.responder
    def heartbeat(self):
        self._registered()
        return self._hub.heartbeat(self)

    @commands.Output.responder
    def output(self, uuid, seq, stream, data, cursor):
        self._registered()
        self._hub.check_owner(self, uuid)
        return self._journal.append(uuid, seq, stream, data, cursor).addCallback(lambda _: {})

    @commands.Started.responder
    def started(self, uuid, started_at):
        self._registered()
        self._hub.check_owner(self, uuid)
        return self.events.on_started(uuid).addCallback(lambda _: {})

    @commands.Exited.responder
    def exited(self, uuid, exit_code, last_seq, finished_at, removed):
        self._registered()
        self._hub.check_owner(self, uuid)
        d = self.events.on_exited(uuid, exit_code, last_seq, finished_at)
        return d.addCallback(lambda _: {})

    @commands.Vanished.responder
    def vanished(self, uuid, seen, exit_code, last_seq):
        self._registered()
        self._hub.check_owner(self, uuid)
        d = self.events.on_vanished(uuid, self._hub.name_of(self.instance_uuid), seen, exit_code, last_seq)
        return d.addCallback(lambda _: {})

    @commands.ExecOutput.responder
    def exec_output(self, exec_id, seq, stream, data):
        self._registered()
        d = self._hub.execs.output(self.instance_uuid, exec_id, seq, stream, data)
        return d.addCallback(lambda _: {})

    @commands.ExecExited.responder
    def exec_exited(self, exec_id, exit_code):
        self._registered()
        self._hub.execs.exited(self.instance_uuid, exec_id, exit_code)
        return {}

    @commands.DownloadChunk.responder
    def download_chunk(self, transfer_id, seq, data):
        self._registered()
        d = self._hub.transfers.chunk(self.instance_uuid, transfer_id, seq, data)
        return d.addCallback(lambda _: {})

    @commands.DownloadEnd.responder
    def download_end(self, transfer_id, error):
        self._registered()
        self._hub.transfers.end(self.instance_uuid, transfer_id, error)
        return {}
