"""
A raw AMP server of the agent port that plays a control plane with a bug:
it lets one agent register, sends it the boxes it is told to, whatever they
hold, and prints what each got as JSON.  For the tests of the agent's own
wall (``csvc.agent.wall``).

    python -m tests.integration.plane_probe PORT STEPS_JSON

``STEPS_JSON`` is a list of ``{"op": "create", "spec": {...}}``,
``{"op": "exec", "uuid": U, "spec": {...}}``, ``{"op": "update", "uuid":
U, "update": {...}}``, ``{"op": "connect", "uuid": U, "name": N}`` or
``{"op": "remove", "uuid": U}``.  Each step answers ``{"ok": {...}}`` or
``{"error": "ExceptionName", "message": ...}``.  Prints ``listening`` once
the port is open.  Bounded: the agent has 60 seconds to register, each box
30 seconds to be answered.
"""

import json
import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols import amp

from csvc.wire import commands


class BuggyPlane(amp.AMP):
    def __init__(self, registered):
        super().__init__()
        self._registered = registered

    @commands.Register.responder
    def register(self, enroll_token, engine, capacity, hostname, containers, facts=None, protocol=None):
        if not self._registered.called:
            self._registered.callback(self)
        return {"instance_uuid": "i-plane-probe", "resume": {}, "heartbeat_interval": 30.0}

    @commands.Heartbeat.responder
    def heartbeat(self):
        return {}

    @commands.Started.responder
    def started(self, uuid, started_at):
        return {}


def _box(step):
    op = step["op"]
    if op == "create":
        return commands.CreateContainer, {"spec": step["spec"]}
    if op == "exec":
        return commands.ExecCreate, {"uuid": step["uuid"], "spec": step["spec"]}
    if op == "update":
        return commands.UpdateContainer, {"uuid": step["uuid"], "update": step["update"]}
    if op == "connect":
        return commands.ConnectNetwork, {"uuid": step["uuid"], "name": step["name"], "aliases": []}
    if op == "remove":
        return commands.RemoveContainer, {"uuid": step["uuid"], "force": True, "volumes": True}
    raise ValueError(op)


@defer.inlineCallbacks
def main(reactor, port, steps):
    registered = defer.Deferred()
    endpoint = TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
    listening = yield endpoint.listen(Factory.forProtocol(lambda: BuggyPlane(registered)))
    print("listening", flush=True)
    agent = yield registered.addTimeout(60, reactor)
    results = []
    for step in steps:
        command, kwargs = _box(step)
        try:
            answer = yield agent.callRemote(command, **kwargs).addTimeout(30, reactor)
        except Exception as exc:
            results.append({"error": type(exc).__name__, "message": str(exc)})
        else:
            results.append({"ok": answer})
    print(json.dumps(results), flush=True)
    agent.transport.loseConnection()
    yield listening.stopListening()


def run():
    port, steps = int(sys.argv[1]), json.loads(sys.argv[2])
    task.react(lambda reactor: main(reactor, port, steps))


if __name__ == "__main__":
    run()
