"""
``csvc.server.build``: the control plane wired through constructors only,
its start-up work left to the ``Startup`` service, and no object of csvc
reading the global reactor.
"""

import ast
import os
import pathlib

import sqlalchemy
from twisted.application.service import IServiceCollection
from twisted.internet.testing import MemoryReactorClock

from csvc import process, server
from csvc.agents.hub import AgentLink
from csvc.notify.notifier import Notifier
from csvc.providers.local import LocalProvider
from csvc.scheduler.health import HeartbeatMonitor
from csvc.scheduler.reaper import IdleReaper
from csvc.store.db import Store

CSVC = pathlib.Path(server.__file__).parent


def settings(tmp_path, *extra):
    options = server.Options()
    options.parseOptions([
        "--data-dir", str(tmp_path / "var"), "--api", "tcp:0:interface=127.0.0.1",
        "--agents", "tcp:0:interface=127.0.0.1", "--instances", "2", "--instance-memory", "512",
        "--instance-cpus", "1", *extra,
    ])
    return options.settings


def only(services, kind):
    (found,) = [s for s in services if isinstance(s, kind)]
    return found


def tables(plane):
    return set(sqlalchemy.inspect(plane.store.engine).get_table_names())


def test_building_does_no_start_up_work_and_startup_does_it_first(tmp_path):
    plane = server.build(settings(tmp_path, "--output-store", "db"), MemoryReactorClock())
    # Built: nothing made on disk, the schema not migrated.
    assert not os.path.exists(tmp_path / "var")
    children = list(IServiceCollection(plane.service))
    kinds = [type(c) for c in children]
    startup = only(children, server.Startup)
    assert kinds.index(process.Tuning) < kinds.index(server.Startup) < kinds.index(Store)
    # Nothing before the start-up work but process-wide settings.
    assert all(c.__module__ in ("csvc.process", "csvc.fastpath") for c in kinds[:kinds.index(server.Startup)])
    # Started in this order (stopped in the reverse one): the start-up work
    # before the store's threads, the listeners before the providers.
    assert children.index(plane.api_listener) < children.index(plane.agents_listener)
    assert children.index(plane.agents_listener) < children.index(plane.providers["local"])
    assert [type(c) for c in children[-2:]] == [HeartbeatMonitor, IdleReaper]
    # Started alone (Tuning would tune the test process itself).
    startup.startService()
    assert os.path.isdir(tmp_path / "var")
    assert {"containers", "instances", "tokens"} <= tables(plane)
    plane.store.engine.dispose()


def test_startup_prepares_the_output_after_migrating(tmp_path):
    plane = server.build(settings(tmp_path), MemoryReactorClock())
    prepared = []
    real = plane.store.prepare_output
    # What the schema holds when the output is prepared (rows moved into
    # files, files lined up with the database: csvc.store.db).
    plane.store.prepare_output = lambda: prepared.append(tables(plane)) or real()
    only(IServiceCollection(plane.service), server.Startup).startService()
    assert len(prepared) == 1 and {"containers", "output_chunks"} <= prepared[0]
    plane.store.engine.dispose()


def test_every_collaborator_is_given_at_construction(tmp_path):
    reactor = MemoryReactorClock()
    plane = server.build(settings(tmp_path), reactor)
    local = plane.providers["local"]
    assert isinstance(local, LocalProvider) and local.notifier is plane.notifier
    assert isinstance(plane.notifier, Notifier)
    assert plane.containers.placement is plane.placement
    assert plane.placement._provider is local
    assert plane.api.instances is plane.instances
    assert plane.relay.clock is reactor
    # Docker's /events hears every notification.
    assert any(type(sink).__name__ == "DockerEvents" for sink in plane.notifier.sinks)
    # Agents' calls wait for them for a while after a start.
    assert plane.hub._expecting == reactor.seconds() + HeartbeatMonitor.startup_for(5.0)
    assert plane.hub.authority is None
    # Each agent link reports its containers to the container service.
    link = plane.agents_listener._factory.buildProtocol(None)
    assert isinstance(link, AgentLink) and link.events is plane.containers
    plane.store.engine.dispose()


def test_the_local_agents_dial_the_address_the_agent_port_got(tmp_path):
    reactor = MemoryReactorClock()
    plane = server.build(settings(tmp_path), reactor)
    spawned = []
    local = plane.providers["local"]
    local._spawn_agents = spawned.append
    local.startService()
    assert spawned == []
    plane.agents_listener.startService()
    ((port, _factory, _backlog, interface),) = reactor.tcpServers
    assert (port, interface) == (0, "127.0.0.1")
    # The address the agent port was bound to (MemoryReactor's: 0.0.0.0:0).
    assert spawned == [plane.agents_listener._port.getHost()]
    local.stopService()
    plane.store.engine.dispose()


def _reactor_imports(path):
    """
    (enclosing function, line) of every import of the global reactor in
    the module at ``path``.
    """
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.ImportFrom) and child.module == "twisted.internet":
                if any(alias.name == "reactor" for alias in child.names):
                    found.append((function, child.lineno))
            elif isinstance(child, ast.Import) and any(a.name == "twisted.internet.reactor" for a in child.names):
                found.append((function, child.lineno))
            visit(child, name)

    visit(tree, None)
    return found


def test_only_the_entry_points_take_the_global_reactor():
    allowed = {("server.py", "makeService"), ("agent/service.py", "makeService"), ("manage.py", "main")}
    found = set()
    for path in CSVC.rglob("*.py"):
        for function, line in _reactor_imports(path):
            found.add((str(path.relative_to(CSVC)), function))
    assert found <= allowed, sorted(found - allowed)
    assert ("server.py", "makeService") in found
