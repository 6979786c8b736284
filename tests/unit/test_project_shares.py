"""
The control plane's exec and transfer registries are bounded per project
as well as in all: one project filling its share neither evicts nor
refuses another's, and another project's exec id is not found.
"""

import pytest

from csvc.wire.commands import NoSuchExec
from csvc.agents.execs import ExecRegistry
from csvc.agents.transfers import TooManyTransfers, TransferRegistry


class Taker:
    def output(self, stream, data):
        return None

    def exited(self, exit_code):
        pass

    def failed(self, exc):
        pass

    def ended(self, error):
        pass


def test_a_project_flooding_unclaimed_execs_drops_only_its_own():
    registry = ExecRegistry()
    registry.max_unclaimed_per_project = 3
    registry.register("b1", "cb", "i1", False, True, project_id="b")
    for n in range(10):
        registry.register(f"a{n}", "ca", "i1", False, True, project_id="a")
    assert registry.get("b1", "cb", "b").project_id == "b"
    kept = [n for n in range(10) if _known(registry, f"a{n}")]
    assert kept == [7, 8, 9]
    assert len(registry) == 4


def test_the_global_bound_takes_from_the_biggest_holder():
    registry = ExecRegistry()
    registry.max_unclaimed_per_project = 5
    registry.max_unclaimed = 6
    registry.register("b1", "cb", "i1", False, True, project_id="b")
    registry.register("c1", "cc", "i1", False, True, project_id="c")
    for n in range(5):
        registry.register(f"a{n}", "ca", "i1", False, True, project_id="a")
    # Seven unclaimed, six allowed: project a, holding the most, lost its oldest.
    assert _known(registry, "b1") and _known(registry, "c1")
    assert [n for n in range(5) if _known(registry, f"a{n}")] == [1, 2, 3, 4]
    # b registering beyond the bound takes from a, which still holds the most.
    registry.register("b2", "cb", "i1", False, True, project_id="b")
    assert _known(registry, "b1") and _known(registry, "b2") and not _known(registry, "a1")


def test_claimed_execs_are_not_evicted_and_free_their_projects_share():
    registry = ExecRegistry()
    registry.max_unclaimed_per_project = 2
    registry.register("a0", "ca", "i1", False, False, project_id="a")
    registry.claim("a0", Taker())
    for n in range(1, 5):
        registry.register(f"a{n}", "ca", "i1", False, True, project_id="a")
    assert _known(registry, "a0") and _known(registry, "a3") and _known(registry, "a4")
    assert not _known(registry, "a1") and not _known(registry, "a2")
    registry.discard("a3")
    registry.register("a5", "ca", "i1", False, True, project_id="a")
    assert _known(registry, "a4") and _known(registry, "a5")


def test_another_projects_exec_is_not_found():
    registry = ExecRegistry()
    registry.register("e1", "c1", "i1", False, True, project_id="a")
    assert registry.get("e1", project_id="a").exec_id == "e1"
    with pytest.raises(NoSuchExec):
        registry.get("e1", project_id="b")
    with pytest.raises(NoSuchExec):
        registry.get("e1", "c2")


def _known(registry, exec_id):
    try:
        registry.get(exec_id)
        return True
    except NoSuchExec:
        return False


def test_transfers_are_bounded_per_project_and_in_all():
    registry = TransferRegistry()
    registry.max_per_project = 2
    registry.max_total = 5
    a = [registry.register("i1", Taker(), "a") for _ in range(2)]
    with pytest.raises(TooManyTransfers) as refused:
        registry.register("i1", Taker(), "a")
    assert "at most 2" in str(refused.value)
    # Project a at its share does not refuse b.
    registry.register("i1", Taker(), "b")
    registry.hold("b")
    registry.register("i1", Taker(), "c")
    assert registry.open_count() == 5
    with pytest.raises(TooManyTransfers):
        registry.hold("d")
    registry.discard(a[0])
    assert registry.open_count("a") == 1
    registry.register("i1", Taker(), "a")
    registry.release("b")
    registry.instance_lost("i1", ConnectionError("gone"))
    assert registry.open_count() == 0 and len(registry) == 0


def test_an_ended_transfer_frees_its_place():
    registry = TransferRegistry()
    registry.max_per_project = 1
    transfer_id = registry.register("i1", Taker(), "a")
    registry.end("i1", transfer_id, "")
    registry.register("i1", Taker(), "a")
    assert registry.open_count("a") == 1


def test_docker_exec_states_are_kept_per_project():
    from csvc.relay.dockerexec import DockerExecs, ExecState

    execs = DockerExecs()
    execs.capacity_per_project = 3
    execs.capacity = 5
    execs.add(ExecState("b1", {}, "b", {}))
    for n in range(10):
        execs.add(ExecState(f"a{n}", {}, "a", {}))
    assert execs.get("b1", "b") is not None
    assert execs.get("b1", "a") is None
    assert [n for n in range(10) if execs.get(f"a{n}", "a")] == [7, 8, 9]
    for n in range(3):
        execs.add(ExecState(f"c{n}", {}, "c", {}))
    # Five kept in all, taken each time from the project holding the most:
    # a (three) for c1, then c (three, registering) for c2; b keeps its one.
    assert execs.get("b1", "b") is not None
    assert [n for n in range(10) if execs.get(f"a{n}", "a")] == [8, 9]
    assert [n for n in range(3) if execs.get(f"c{n}", "c")] == [1, 2]
