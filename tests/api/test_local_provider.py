"""
The local provider at start: its agents are started in batches, each once
the previous batch has registered (or waited long enough), and its instances
are sized by the settings.  The real store on SQLite, a ``Clock``; agent
processes are recorded instead of spawned.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed

from csvc.providers.local import LocalProvider
from csvc.agents.hub import AgentHub
from tests.api.conftest import result_of


class RecordingProvider(LocalProvider):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = []

    def _start_agent(self, connect, row, token):
        self.started.append(row["name"])


def test_agents_start_in_batches_as_the_previous_ones_register(env):
    hub = AgentHub(env.store, env.journal, env.clock)
    provider = RecordingProvider(env.store, succeed(IPv4Address("TCP", "127.0.0.1", 8781)), 25, 10, env.clock, hub=hub, start_batch=10,
                                 start_wait=60.0, memory=512, cpus=1.0)
    provider._spawn_agents(IPv4Address("TCP", "127.0.0.1", 8781))
    assert len(provider.started) == 10
    rows = {r["name"]: r for r in result_of(env.store.list_instances(provider="local"))}
    for name in provider.started[:9]:
        hub.notify_registered(rows[name]["uuid"])
    assert len(provider.started) == 10
    hub.notify_registered(rows[provider.started[9]]["uuid"])
    assert len(provider.started) == 20
    # Creating an instance for a project need not wait for the rest.
    row = result_of(provider.create_instance("project-a"))
    assert row["name"] in provider.started and (row["memory"], row["cpus"]) == (512, 1.0)
    # A batch that never registers holds the next one back only so long.
    env.clock.advance(59)
    assert len(provider.started) == 21
    env.clock.advance(1)
    assert len(provider.started) == 26
    shared = [r for r in result_of(env.store.list_instances(provider="local")) if r["project_id"] is None]
    assert len(shared) == 25
    # Each shared instance's agent was started once, the project's once.
    assert sorted(n for n in provider.started if n != row["name"]) == sorted(r["name"] for r in shared)
    assert {(r["memory"], r["cpus"]) for r in shared} == {(512, 1.0)}
