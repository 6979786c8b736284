"""
A container's output over GET /v1/containers/<id>/logs, and waiting for its
exit with POST /v1/containers/<id>/wait.
"""

import pytest

from tests.api.conftest import pending

STDOUT, STDERR = 1, 2


@pytest.fixture
def running(env):
    """
    A running container of alice's with output on both streams.
    """
    view = env.alice.create(name="talker", run=True)
    env.output(
        view["uuid"],
        (STDOUT, b"out one\nout two\n"),
        (STDERR, b"err one\n"),
        (STDOUT, b"out three\nout "),
        (STDOUT, b"four\n"),
    )
    return view["uuid"]


ALL = b"out one\nout two\nerr one\nout three\nout four\n"


def logs(env, ident, query=""):
    reply = env.alice.get(f"/v1/containers/{ident}/logs{query}")
    assert reply.code == 200, reply.body
    assert reply.headers.getRawHeaders(b"Content-Type") == [b"application/octet-stream"]
    return reply.body


def test_logs_in_seq_order(env, running):
    assert logs(env, running) == ALL
    assert logs(env, "talker") == ALL


def test_logs_are_stored_not_just_relayed(env, running):
    assert env.row(running)["last_seq"] == 4
    assert env.row(running)["log_cursor"] == "cursor-4"


def test_logs_of_a_container_without_output_are_empty(env):
    view = env.alice.create()
    assert logs(env, view["uuid"]) == b""


def test_stdout_only(env, running):
    assert logs(env, running, "?stderr=false") == b"out one\nout two\nout three\nout four\n"


def test_stderr_only(env, running):
    assert logs(env, running, "?stdout=false") == b"err one\n"


def test_neither_stream_is_400(env, running):
    error = env.alice.get(f"/v1/containers/{running}/logs?stdout=false&stderr=false").error(400)
    assert "'stdout'" in error["message"] and "'stderr'" in error["message"]


@pytest.mark.parametrize("query,name", [("?stdout=maybe", "stdout"), ("?since=-1", "since"), ("?tail=x", "tail")])
def test_bad_query_is_400(env, running, query, name):
    error = env.alice.get(f"/v1/containers/{running}/logs{query}").error(400)
    assert f"'{name}'" in error["message"]


@pytest.mark.parametrize(
    "tail,expected",
    [
        ("1", b"out four\n"),
        ("2", b"out three\nout four\n"),
        ("3", b"err one\nout three\nout four\n"),
        ("4", b"out two\nerr one\nout three\nout four\n"),
        ("5", ALL),
        ("100", ALL),
        ("all", ALL),
        ("0", b""),
    ],
)
def test_tail(env, running, tail, expected):
    assert logs(env, running, f"?tail={tail}") == expected


def test_tail_of_one_stream(env, running):
    assert logs(env, running, "?tail=3&stderr=false") == b"out two\nout three\nout four\n"
    assert logs(env, running, "?tail=1&stdout=false") == b"err one\n"


@pytest.mark.parametrize(
    "since,expected",
    [
        ("0", ALL),
        ("1", b"err one\nout three\nout four\n"),
        ("3", b"four\n"),
        ("4", b""),
        ("99", b""),
    ],
)
def test_since(env, running, since, expected):
    assert logs(env, running, f"?since={since}") == expected


def test_since_and_tail_take_the_later(env, running):
    # tail=4 starts inside chunk 1; since=1 is later
    assert logs(env, running, "?tail=4&since=1") == b"err one\nout three\nout four\n"
    # tail=1 starts in chunk 4 (after the newline in chunk 3); since=1 is earlier
    assert logs(env, running, "?tail=1&since=1") == b"out four\n"


def test_logs_of_a_deleted_container_are_404(env, running):
    assert env.alice.delete(f"/v1/containers/{running}?force=true").code == 204
    env.alice.get(f"/v1/containers/{running}/logs").error(404)


def test_follow_an_exited_container_ends(env, running):
    env.exit(running, 0)
    assert logs(env, running, "?follow=true") == ALL


def test_follow_a_running_container_until_it_exits(env, running):
    response, received, done = env.alice.stream(f"/v1/containers/{running}/logs?follow=true")
    assert response.code == 200
    # What is stored arrives at once; the response stays open.
    assert b"".join(received) == ALL
    assert pending(done)

    env.output(running, (STDERR, b"late err\n"), (STDOUT, b"late out\n"))
    assert b"".join(received) == ALL + b"late err\nlate out\n"
    assert pending(done)

    env.exit(running, 0)
    assert not pending(done)
    assert b"".join(received) == ALL + b"late err\nlate out\n"


def test_follow_with_nothing_stored_yet(env):
    view = env.alice.create(run=True)
    d = env.alice.start("GET", f"/v1/containers/{view['uuid']}/logs?follow=true&stderr=false")
    env.output(view["uuid"], (STDERR, b"hidden\n"))
    env.output(view["uuid"], (STDOUT, b"shown\n"))
    env.exit(view["uuid"], 0)
    reply = env.alice.finish(d)
    assert reply.code == 200
    assert reply.body == b"shown\n"


def test_follow_drains_output_sent_before_the_exit(env, running):
    """
    An exit that covers output not yet stored is recorded only after it is:
    a follower gets every byte before the stream ends.
    """
    _response, received, done = env.alice.stream(f"/v1/containers/{running}/logs?follow=true")
    exited = env.exit(running, 3, last_seq=5)
    assert pending(exited)
    assert pending(done)
    assert env.row(running)["status"] == "running"
    env.output(running, (STDOUT, b"last words\n"))
    assert not pending(exited)
    assert not pending(done)
    assert b"".join(received) == ALL + b"last words\n"
    assert env.row(running)["exit_code"] == 3


def test_follow_ends_when_the_container_is_deleted(env, running):
    _response, received, done = env.alice.stream(f"/v1/containers/{running}/logs?follow=true")
    assert pending(done)
    assert env.alice.delete(f"/v1/containers/{running}?force=true").code == 204
    assert not pending(done)
    assert b"".join(received) == ALL


def test_follower_hanging_up_is_no_error(env, running):
    """
    A follower that goes away stops being served, quietly: nothing is logged
    as a failure (the autouse fixture checks) and its output is no longer read.
    """
    _response, received, done = env.alice.stream(f"/v1/containers/{running}/logs?follow=true")
    assert b"".join(received) == ALL
    reads = []
    read_output = env.store.read_output

    def counting(*args, **kwargs):
        reads.append(args)
        return read_output(*args, **kwargs)

    env.store.read_output = counting
    env.disconnect_clients()
    failures = []
    done.addErrback(failures.append)
    assert len(failures) == 1
    env.output(running, (STDOUT, b"nobody reads this\n"))
    env.exit(running, 0)
    assert reads == []
    assert b"".join(received) == ALL
    # and others are still served
    assert logs(env, running) == ALL + b"nobody reads this\n"


# -- wait -----------------------------------------------------------------


def test_wait_on_an_exited_container(env, running):
    env.exit(running, 3)
    reply = env.alice.post(f"/v1/containers/{running}/wait")
    assert reply.code == 200
    assert reply.json() == {"exit_code": 3, "status": "exited", "status_reason": None}


def test_wait_on_a_running_container_answers_after_the_exit(env, running):
    d = env.alice.start("POST", f"/v1/containers/{running}/wait")
    env.advance(3600)
    assert pending(d)
    env.output(running, (STDOUT, b"more\n"))
    assert pending(d)
    env.exit(running, 7)
    reply = env.alice.finish(d)
    assert reply.code == 200
    assert reply.json() == {"exit_code": 7, "status": "exited", "status_reason": None}
    assert env.alice.get(f"/v1/containers/{running}").json()["finished_at"] == "2023-11-14T22:20:00.123456Z"


def test_wait_on_a_created_container_answers_after_it_ran(env):
    view = env.alice.create()
    d = env.alice.start("POST", f"/v1/containers/{view['uuid']}/wait")
    assert env.alice.post(f"/v1/containers/{view['uuid']}/start").code == 202
    assert pending(d)
    env.exit(view["uuid"], 0)
    reply = env.alice.finish(d)
    assert reply.json()["exit_code"] == 0


def test_wait_on_a_container_deleted_meanwhile_is_404(env, running):
    d = env.alice.start("POST", f"/v1/containers/{running}/wait")
    assert env.alice.delete(f"/v1/containers/{running}?force=true").code == 204
    error = env.alice.finish(d).error(404)
    assert "deleted" in error["message"]


def test_waiter_hanging_up_is_no_error(env, running):
    d = env.alice.start("POST", f"/v1/containers/{running}/wait")
    env.disconnect_clients()
    failures = []
    d.addErrback(failures.append)
    assert len(failures) == 1
    env.exit(running, 0)
    assert env.alice.post(f"/v1/containers/{running}/wait").json()["exit_code"] == 0
