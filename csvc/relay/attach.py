"""
The relay's front: who may attach to what, and turning an HTTP request into
a WebSocket attach session.
"""

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.defer import inlineCallbacks

from csvc.compute import states
from csvc.store.quotas import QuotaExceeded, over
from csvc.relay.websocket import AttachContext, attach_factory


class _TakeOver(WebSocketResource):
    """
    Hands the request's connection to the WebSocket protocol, after taking it
    from twisted.web's channel: the channel is registered as the transport's
    producer and has an idle timeout, neither of which may outlive it.
    """

    def render(self, request):
        channel = request.channel
        if channel is not None and channel.transport is not None:
            channel.setTimeout(None)
            channel.transport.unregisterProducer()
        return super().render(request)


class Relay:
    """
    The attach relay of one control plane: its throttle, its open sessions,
    the one-time token lifetime, and the Origin policy.
    """

    #: Seconds a one-time attach token stays valid.
    token_ttl = 60

    #: Seconds without traffic either way before a session is closed.
    idle_timeout = 3600

    def __init__(self, containers, journal, store, clock, throttle=None, allowed_origins=(), idle_timeout=3600):
        self._containers = containers
        #: the sessions' time (their idle timeouts)
        self.clock = clock
        self._journal = journal
        self._store = store
        self.throttle = throttle
        self.allowed_origins = tuple(allowed_origins)
        self.idle_timeout = idle_timeout
        self.sessions = set()

    def check_attachable(self, row, options):
        """
        A container that will not run again has nothing live to attach to;
        with ``logs`` its output is still replayed.
        """
        if states.may("attach", row["status"]):
            return
        if options.get("logs") and states.may("attach_replay", row["status"]):
            return
        raise states.InvalidState("attach", row["status"], "attach with logs=true to replay its output")

    def project_sessions(self, project_id):
        """
        How many attach sessions (container and exec) of a project are open.
        """
        return sum(1 for session in self.sessions if session.project_id == project_id)

    @inlineCallbacks
    def check_session_quota(self, row):
        """
        Fails with ``QuotaExceeded`` when the container's project already has
        as many attach sessions open as its quota allows.
        """
        limits = yield self._store.get_quota(row["project_id"])
        in_use = self.project_sessions(row["project_id"])
        if over(limits["attach_sessions"], in_use, 1):
            raise QuotaExceeded("attach_sessions", limits["attach_sessions"], in_use)

    @inlineCallbacks
    def hold_session(self, row, holder):
        """
        Count ``holder`` (with a ``project_id``) among the open sessions,
        or fail with ``QuotaExceeded`` when the project has no session
        left (checked and counted in one turn, so concurrent requests
        cannot both take the last one).  ``self.sessions.discard`` it
        once over.
        """
        limits = yield self._store.get_quota(row["project_id"])
        in_use = self.project_sessions(row["project_id"])
        if over(limits["attach_sessions"], in_use, 1):
            raise QuotaExceeded("attach_sessions", limits["attach_sessions"], in_use)
        self.sessions.add(holder)
        return holder

    def upgrade(self, request, row, options, raw_only=False):
        streams = {s for s, key in ((1, "stdout"), (2, "stderr")) if options.get(key)}
        if options.get("logs"):
            next_seq = 1
        else:
            next_seq = max(self._journal.queued_seq(row["uuid"]), row["last_seq"]) + 1
        context = AttachContext(
            self._containers,
            self._journal,
            self._store,
            row,
            streams,
            options.get("stdin", False),
            next_seq,
            throttle=self.throttle,
            secure=request.isSecure(),
            allowed_origins=self.allowed_origins,
            registry=self.sessions,
            raw_only=raw_only,
            idle_timeout=self.idle_timeout,
            clock=self.clock,
        )
        return _TakeOver(attach_factory(context))
