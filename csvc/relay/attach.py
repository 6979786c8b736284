"""
The relay's front: who may attach to what, and turning an HTTP request into
a WebSocket attach session.
"""

from autobahn.twisted.resource import WebSocketResource

from csvc.compute.states import InvalidState
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

    def __init__(self, containers, journal, store, throttle=None, allowed_origins=()):
        self._containers = containers
        self._journal = journal
        self._store = store
        self.throttle = throttle
        self.allowed_origins = tuple(allowed_origins)
        self.sessions = set()

    def check_attachable(self, row, options):
        """
        A container that will not run again has nothing live to attach to;
        with ``logs`` its output is still replayed.
        """
        if row["status"] in ("creating", "created", "running"):
            return
        if options.get("logs") and row["status"] in ("exited", "error"):
            return
        raise InvalidState("attach", row["status"], "attach with logs=true to replay its output")

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
        )
        return _TakeOver(attach_factory(context))
