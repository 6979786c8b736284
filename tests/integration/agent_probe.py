"""
A raw AMP client of the agent port, for the security tests: it plays an agent
(or an impostor) box by box and prints what each box got as JSON.

    python -m tests.integration.agent_probe ENDPOINT STEPS_JSON

``STEPS_JSON`` is a list of ``{"op": "register", "token": T}``,
``{"op": "output", "uuid": U, "seq": N, "data": "text"}`` or
``{"op": "heartbeat"}``.  Each step answers ``{"ok": {...}}`` or
``{"error": "ExceptionName", "message": ...}``; a step after the connection
closed answers ``{"error": "ConnectionClosed"}``.  Bounded: every box waits
at most 10 seconds, the whole run 30.
"""

import json
import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.protocols import amp

from csvc.wire import commands


class Probe(amp.AMP):
    def __init__(self):
        super().__init__()
        self.closed = defer.Deferred()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.closed.callback(None)


def _box(step):
    if step["op"] == "register":
        return commands.Register, dict(
            enroll_token=step["token"], engine="docker", capacity=1, hostname="probe", containers=[], facts={},
            protocol=commands.PROTOCOL,
        )
    if step["op"] == "output":
        return commands.Output, dict(
            uuid=step["uuid"], seq=step["seq"], stream=1, data=step["data"].encode(), cursor=""
        )
    if step["op"] == "heartbeat":
        return commands.Heartbeat, {}
    raise ValueError(step["op"])


@defer.inlineCallbacks
def main(reactor, endpoint, steps):
    proto = yield connectProtocol(clientFromString(reactor, endpoint), Probe()).addTimeout(10, reactor)
    results = []
    for step in steps:
        if proto.closed.called:
            results.append({"error": "ConnectionClosed"})
            continue
        command, kwargs = _box(step)
        try:
            answer = yield proto.callRemote(command, **kwargs).addTimeout(10, reactor)
        except Exception as exc:
            results.append({"error": type(exc).__name__, "message": str(exc)})
        else:
            results.append({"ok": answer})
    print(json.dumps(results))
    proto.transport.loseConnection()


def run():
    endpoint, steps = sys.argv[1], json.loads(sys.argv[2])

    def bounded(reactor):
        d = main(reactor, endpoint, steps)
        return d.addTimeout(30, reactor)

    task.react(bounded)


if __name__ == "__main__":
    run()
