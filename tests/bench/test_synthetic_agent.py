"""
The benchmarks' synthetic agent (bench/_synthetic.py: the real agent's link
and core on a synthetic engine) speaks today's contract with a control
plane: registration, a container created, started, its output pushed within
the window, its exit reported once every chunk is acknowledged, and a
removal with ``volumes`` (which the old hand-written agent did not take).
In memory, over iosim: fast, no engine.
"""

import os
import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.test.iosim import connectedServerAndClient

from csvc.wire import commands
from csvc.agent.core import AgentCore
from csvc.agent.link import AgentProtocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _synthetic import CHUNK, WINDOW, SyntheticEngine, SyntheticOutput  # noqa: E402

UUID = "6f1c9a52-0c1e-4d55-9f0e-3d2b7a1c8e40"


class Plane(amp.AMP):
    """
    The control plane's end, answering reports; Output answers are held
    while ``hold`` is set, to see the window.
    """

    def __init__(self):
        super().__init__()
        self.registered = []
        self.outputs = []
        self.exits = []
        self.held = []
        self.hold = False

    @commands.Register.responder
    def register(self, enroll_token, engine, capacity, hostname, containers, facts=None, protocol=None):
        self.registered.append(dict(enroll_token=enroll_token, engine=engine, containers=containers,
                                    facts=facts, protocol=protocol))
        return {"instance_uuid": "i-1", "resume": {}, "heartbeat_interval": 5.0}

    @commands.Heartbeat.responder
    def heartbeat(self):
        return {}

    @commands.Output.responder
    def output(self, uuid, seq, stream, data, cursor):
        self.outputs.append((uuid, seq, stream, len(data), set(data)))
        if self.hold:
            d = Deferred()
            self.held.append(d)
            return d
        return {}

    @commands.Exited.responder
    def exited(self, uuid, exit_code, last_seq, finished_at, removed):
        self.exits.append((uuid, exit_code, last_seq))
        return {}


def connect():
    engine = SyntheticEngine()
    core = AgentCore(engine, "enroll-token", 100, "synthetic-1", follower_factory=SyntheticOutput, clock=Clock())
    agent, plane, pump = connectedServerAndClient(Plane, lambda: AgentProtocol(core, Clock()))
    pump.flush()
    return engine, plane, pump


def call(plane, pump, command, **kwargs):
    results = []
    plane.callRemote(command, **kwargs).addBoth(results.append)
    pump.flush()
    assert len(results) == 1
    return results[0]


def test_a_container_runs_through_the_synthetic_agent():
    engine, plane, pump = connect()
    assert plane.registered == [dict(enroll_token="enroll-token", engine="synthetic", containers=[],
                                     facts=plane.registered[0]["facts"], protocol=commands.PROTOCOL)]
    assert plane.registered[0]["facts"]["NCPU"] >= 1

    created = call(plane, pump, commands.CreateContainer, spec={"uuid": UUID, "project_id": "p", "tty": False})
    assert created == {"engine_id": "synthetic-" + UUID}
    started = engine.started(UUID)
    assert call(plane, pump, commands.StartContainer, uuid=UUID) == {}
    output = []
    started.addCallback(output.append)
    assert len(output) == 1 and isinstance(output[0], SyntheticOutput)

    # Ten chunks and a bit, answers held: no more than the window goes.
    plane.hold = True
    pushed = []
    output[0].push(10 * CHUNK + 5).addCallback(pushed.append)
    pump.flush()
    assert [seq for _, seq, _, _, _ in plane.outputs] == list(range(1, WINDOW + 1))
    while plane.held:
        plane.held.pop(0).callback({})
        pump.flush()
    assert [seq for _, seq, _, _, _ in plane.outputs] == list(range(1, 12))
    assert [size for _, _, _, size, _ in plane.outputs] == [CHUNK] * 10 + [5]
    assert {(uuid, stream) for uuid, _, stream, _, _ in plane.outputs} == {(UUID, 1)}
    assert all(data == {0} for _, _, _, _, data in plane.outputs)
    assert len(pushed) == 1 and pushed[0][2] == 11

    # The process exits: the agent reports it, with the last seq.
    assert plane.exits == []
    engine.exit(UUID, 0)
    pump.flush()
    assert plane.exits == [(UUID, 0, 11)]

    # Removed with its volumes, then gone (a declared error: the link stays).
    assert call(plane, pump, commands.RemoveContainer, uuid=UUID, force=True, volumes=True) == {}
    again = call(plane, pump, commands.RemoveContainer, uuid=UUID, force=True, volumes=True)
    assert again.check(commands.NoSuchContainer)
    assert call(plane, pump, commands.CreateContainer, spec={"uuid": UUID, "project_id": "p"}) == created


def test_what_the_synthetic_engine_lacks_is_an_engine_error():
    engine, plane, pump = connect()
    call(plane, pump, commands.CreateContainer, spec={"uuid": UUID, "project_id": "p"})
    failed = call(plane, pump, commands.ExecCreate, uuid=UUID, spec={"cmd": ["true"]})
    assert failed.check(commands.EngineError)
    assert call(plane, pump, commands.ListImages) == {"images": []}
