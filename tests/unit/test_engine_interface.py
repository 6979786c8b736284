"""
The engine contract (``csvc.agent.engine.IEngine``) against every engine
that declares it: the Docker and LXC engines and the benchmarks' synthetic
one (bench/_synthetic.py).  Each has every method of the interface with a
compatible signature, and the agent calls nothing of an engine that the
interface does not name: an engine, or a caller, that drifts from the
contract fails here rather than in a benchmark nobody ran.
"""

import ast
import inspect
import os
import sys

import pytest
from zope.interface.interface import Method
from zope.interface.verify import verifyClass

from csvc.agent.docker_engine import DockerEngine
from csvc.agent.engine import IEngine
from csvc.agent.lxc_engine import LxcEngine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _synthetic import SyntheticEngine  # noqa: E402

ENGINES = [DockerEngine, LxcEngine, SyntheticEngine]
#: The agent's modules that drive an engine.
CALLERS = ["core.py", "link.py", "execs.py", "transfers.py", "events.py", "service.py"]


def methods():
    return sorted(name for name in IEngine.names(all=True) if isinstance(IEngine[name], Method))


def mismatches(cls):
    """
    How ``cls`` departs from IEngine's methods: one line per method missing,
    parameter renamed, reordered, missing, made required or given another
    default.
    """
    found = []
    for name in methods():
        wanted = IEngine[name].getSignatureInfo()
        implementation = getattr(cls, name, None)
        if not callable(implementation):
            found.append(f"{name}: missing")
            continue
        params = list(inspect.signature(implementation).parameters.values())[1:]  # self
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in positional]
        if names[:len(wanted["positional"])] != list(wanted["positional"]):
            found.append(f"{name}: parameters {names}, the interface's {list(wanted['positional'])}")
            continue
        for p in positional[:len(wanted["required"])]:
            if p.default is not p.empty:
                found.append(f"{name}: {p.name} has a default, the interface requires it")
        for p in positional[len(wanted["required"]):len(wanted["positional"])]:
            if p.default is p.empty:
                found.append(f"{name}: {p.name} is required, the interface gives it a default")
            elif p.default != wanted["optional"][p.name]:
                found.append(f"{name}: {p.name}={p.default!r}, the interface's ={wanted['optional'][p.name]!r}")
        for p in params:
            if p in positional[len(wanted["positional"]):] or p.kind == p.KEYWORD_ONLY:
                if p.default is p.empty:
                    found.append(f"{name}: {p.name} is required and not in the interface")
    return found


@pytest.mark.parametrize("cls", ENGINES, ids=lambda cls: cls.__name__)
def test_declares_and_provides_the_interface(cls):
    assert IEngine.implementedBy(cls)
    assert verifyClass(IEngine, cls)
    assert isinstance(cls.name, str) and cls.name


@pytest.mark.parametrize("cls", ENGINES, ids=lambda cls: cls.__name__)
def test_signatures_match_the_interface(cls):
    assert mismatches(cls) == []


def test_a_drifted_engine_is_caught():
    """
    The check finds what broke relay_throughput's synthetic agent (a
    ``remove`` without the ``volumes`` the contract gained) and its kin.
    """

    class Drifted(SyntheticEngine):
        def remove_container(self, uuid, force):
            pass

        def attach(self, engine_id, protocol, stdin=True, output=True):
            pass

        def kill_container(self, uuid, signal, grace):
            pass

        def top(self, uuid, args=None):
            pass

    class Missing:
        pass

    found = mismatches(Drifted)
    assert any(line.startswith("remove_container:") for line in found)
    assert any(line.startswith("attach: stdin=True") for line in found)
    assert "kill_container: grace is required and not in the interface" in found
    assert any(line.startswith("top: parameters") for line in found)
    assert len(found) == 4
    assert len(mismatches(Missing)) == len(methods())


def engine_calls(path):
    """
    The attributes the module at ``path`` reads of an engine: ``X`` in
    ``self._engine.X``, ``self._core.engine.X``, ``engine.X``.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    called = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Attribute) and owner.attr in ("_engine", "engine"):
            called.add(node.attr)
        elif isinstance(owner, ast.Name) and owner.id == "engine":
            called.add(node.attr)
    return called


def test_the_agent_calls_only_the_interface():
    agent = os.path.join(ROOT, "csvc", "agent")
    called = set()
    for module in CALLERS:
        called |= engine_calls(os.path.join(agent, module))
    # The scan sees the calls (it would pass vacuously otherwise).
    assert {"create", "remove_container", "attach", "inventory", "exec_start", "download", "name"} <= called
    assert called - set(IEngine.names(all=True)) == set()
