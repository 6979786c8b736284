"""
Each project's share of an agent's engine threads: at most ``per_project``
calls of one project run at once, at most ``threads`` in all, the rest wait
in turn per project, and a full queue is refused with ``EngineBusy``.
"""

from hypothesis import given, settings, strategies as st
from twisted.internet.defer import Deferred

from csvc.wire.commands import EngineBusy
from csvc.agent.docker_engine import DockerEngine, share_key
from csvc.agent.shares import EngineShares


class Calls:
    """
    Calls that run until the test ends them.
    """

    def __init__(self):
        self.started = []

    def start(self, name):
        def start():
            d = Deferred()
            self.started.append((name, d))
            return d

        return start

    def end(self, name, result=None):
        for n, d in self.started:
            if n == name and not d.called:
                d.callback(result)
                return
        raise AssertionError(f"{name} is not running")


def test_one_project_cannot_take_every_thread():
    shares, calls = EngineShares(threads=4), Calls()
    results = [shares.run("a", calls.start(f"a{n}")) for n in range(6)]
    assert [n for n, _ in calls.started] == ["a0", "a1"]
    shares.run("b", calls.start("b0"))
    shares.run("b", calls.start("b1"))
    shares.run("c", calls.start("c0"))
    # a holds 2, b 2: the pool is full; c waits, as do a's other four.
    assert [n for n, _ in calls.started] == ["a0", "a1", "b0", "b1"]
    calls.end("a0", "done")
    assert results[0].result == "done"
    # Queues are taken in turn: a's (it waited first; one running, under its
    # share of two), then c's when b's call ends, then a's again.
    assert [n for n, _ in calls.started][4:] == ["a2"]
    calls.end("b0")
    assert [n for n, _ in calls.started][5:] == ["c0"]
    calls.end("a1")
    assert [n for n, _ in calls.started][6:] == ["a3"]


def test_a_full_queue_is_refused_and_another_project_is_not():
    shares, calls = EngineShares(threads=2, queue=2), Calls()
    for n in range(3):
        shares.run("a", calls.start(f"a{n}"))
    refused = shares.run("a", calls.start("a3"))
    failures = []
    refused.addErrback(failures.append)
    assert failures and failures[0].check(EngineBusy)
    assert "1 running, 2 waiting" in failures[0].getErrorMessage()
    shares.run("b", calls.start("b0"))
    assert [n for n, _ in calls.started] == ["a0", "b0"]


def test_a_cancelled_waiting_call_leaves_the_queue():
    shares, calls = EngineShares(threads=1), Calls()
    shares.run("a", calls.start("a0"))
    waiting = shares.run("a", calls.start("a1"))
    waiting.cancel()
    waiting.addErrback(lambda f: None)
    assert shares.waiting("a") == 0
    calls.end("a0")
    assert [n for n, _ in calls.started] == ["a0"] and shares.running("a") == 0


def test_failures_free_the_place_too():
    shares, calls = EngineShares(threads=1), Calls()
    first = shares.run("a", calls.start("a0"))
    second = shares.run("a", calls.start("a1"))
    calls.started[0][1].errback(ValueError("engine"))
    first.addErrback(lambda f: None)
    assert [n for n, _ in calls.started] == ["a0", "a1"]
    calls.end("a1", 7)
    assert second.result == 7 and shares.running("a") == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=60), st.integers(1, 5))
def test_bounds_hold_whatever_the_order(steps, threads):
    shares, calls = EngineShares(threads=threads, queue=4), Calls()
    for is_start, key in steps:
        if is_start:
            shares.run(key, calls.start(key)).addErrback(lambda f: f.trap(EngineBusy))
        else:
            running = [n for n, d in calls.started if n == key and not d.called]
            if running:
                calls.end(key)
        running = {k: sum(1 for n, d in calls.started if n == k and not d.called) for k in "abc"}
        assert sum(running.values()) <= threads
        assert all(n <= shares.per_project for n in running.values())
        assert all(shares.waiting(k) <= 4 for k in "abc")
        # Nothing waits while it could run.
        for k in "abc":
            if shares.waiting(k):
                assert sum(running.values()) == threads or running[k] == shares.per_project


class Recorder:
    def __init__(self):
        self.keys = []

    def run(self, key, start):
        self.keys.append(key)
        return Deferred()


def test_the_engine_keys_each_call_by_its_project():
    engine = DockerEngine(reactor=None, threads=4)
    engine.shares = recorder = Recorder()
    engine.create({"uuid": "u1", "project_id": "project-a", "image": "busybox"})
    engine.start_container("u1")
    engine.top("u1", "aux")
    engine.start_container("unknown")
    engine.sizes("project-b")
    engine.list_volumes("csvc-projecta-")
    engine.remove_volume("csvc-projectb-data", False)
    engine.images()
    # Not a thread's call: no share taken.
    key_a = share_key("project-a")
    assert key_a != share_key("project-b")
    assert recorder.keys == [key_a, key_a, key_a, None, share_key("project-b"), share_key("projecta"),
                             share_key("projectb"), None]


def test_an_engine_call_of_an_exec_is_its_containers_projects():
    engine = DockerEngine(reactor=None, threads=4)
    engine.shares = recorder = Recorder()
    engine.create({"uuid": "u1", "project_id": "p1", "image": "busybox"})
    engine._exec_created("x1", "u1")
    engine.exec_resize("x1", 10, 10)
    engine.exec_inspect("nope")
    assert recorder.keys[-2:] == [share_key("p1"), None]


def test_pulls_take_a_share_of_their_own_not_the_inventorys():
    # A pull's command names no project; one member's many pulls must not
    # hold the key of the inventory, the facts and the image lists.
    from csvc.agent.docker_engine import PULLS

    engine = DockerEngine(reactor=None, threads=4)
    engine.shares = recorder = Recorder()
    engine.pull_image("busybox:latest")
    engine.images()
    assert recorder.keys == [PULLS, None]
    assert PULLS not in {share_key(p) for p in ("~pulls", "pulls", "-pulls")}
