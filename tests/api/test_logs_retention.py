"""
Logs of a container whose oldest output the retention policy dropped
(csvc/store/retention.py): a marker saying how much, once, at the start of a
read that begins in the dropped range, and nowhere else.
"""

import pytest

from tests.api.test_logs_and_wait import logs

STDOUT, STDERR = 1, 2
MARKER = b"[csvc: 16 bytes of older output dropped by the retention policy]\n"


@pytest.fixture
def trimmed(env):
    """
    A container that wrote five lines of 8 bytes, keeping 24 bytes: the
    first two lines are gone.
    """
    env.store.output_retention = 24
    view = env.alice.create(name="chatty", run=True)
    env.output(view["uuid"], *[(STDOUT if n % 2 else STDERR, b"line %02d\n" % n) for n in range(1, 6)])
    return view["uuid"]


KEPT = b"line 03\nline 04\nline 05\n"


def test_a_full_read_starts_with_the_marker_once(env, trimmed):
    assert logs(env, trimmed) == MARKER + KEPT
    assert env.row(trimmed)["output_dropped"] == 16


def test_a_read_of_one_stream_still_says_what_went(env, trimmed):
    assert logs(env, trimmed, "?stderr=false") == MARKER + b"line 03\nline 05\n"


def test_a_read_inside_what_is_kept_has_no_marker(env, trimmed):
    # since=2: after the last chunk dropped, the read starts with the first kept
    assert logs(env, trimmed, "?since=2") == KEPT
    assert logs(env, trimmed, "?since=3") == b"line 04\nline 05\n"
    assert logs(env, trimmed, "?tail=2") == b"line 04\nline 05\n"
    assert logs(env, trimmed, "?tail=0") == b""


def test_a_tail_reaching_the_first_kept_chunk_starts_with_the_marker(env, trimmed):
    # The third line from the end starts where the kept output starts: it
    # may be the end of a line that was dropped, so the marker says so.
    assert logs(env, trimmed, "?tail=3") == MARKER + KEPT
    assert logs(env, trimmed, "?tail=10") == MARKER + KEPT
    assert logs(env, trimmed, "?since=1") == MARKER + KEPT


def test_without_drops_there_is_no_marker(env):
    view = env.alice.create(name="quiet", run=True)
    env.output(view["uuid"], (STDOUT, b"hello\n"))
    assert logs(env, view["uuid"]) == b"hello\n"


def test_a_project_quota_of_nothing_keeps_only_the_marker(env):
    env.admin.request("PUT", "/v1/quotas/project-a", body={"output": 0})
    view = env.alice.create(name="muted", run=True)
    env.output(view["uuid"], (STDOUT, b"gone\n"), (STDERR, b"gone too\n"))
    assert logs(env, view["uuid"]) == b"[csvc: 14 bytes of older output dropped by the retention policy]\n"
    # another project's output is its own
    other = env.bob.create(name="loud", run=True)
    env.output(other["uuid"], (STDOUT, b"kept\n"))
    reply = env.bob.get(f"/v1/containers/{other['uuid']}/logs")
    assert reply.body == b"kept\n"
    usage = env.alice.get("/v1/quotas/project-a/usage").json()
    assert usage["output"] == {"limit": 0, "in_use": 0}
