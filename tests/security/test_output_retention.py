"""
Output floods past the retention and the project's quota, on a service of
its own with small limits (1 MiB per container, 2 MiB per project), with
either output store, and a real container: what is kept stays bounded, logs (native and Docker) start with
the marker, the newest output is there, and another project's output is
intact.
"""

import struct

import pytest
import pytest_twisted

from tests.integration.conftest import docker_sdk, remove_project_containers, running_plane

MIB = 1024 * 1024
#: What a container of the flooding project writes: about 3 MiB, then a last line.
FLOOD = "yes 0123456789abcdef0123456789abcdef | head -c 3000000; echo; echo THE-END"
MARKER_START = b"[csvc: "
MARKER_END = b" bytes of older output dropped by the retention policy]\n"


@pytest.fixture(scope="module", params=["files", "db"])
def plane(request, tmp_path_factory):
    with running_plane(
        tmp_path_factory.mktemp("retention"),
        extra_args=["--output-retention-mib", "1", "--quota-output", "2", "--output-store", request.param],
    ) as plane:
        yield plane
    for project in ("flood", "calm"):
        remove_project_containers(project)


def dropped_of(body):
    assert body.startswith(MARKER_START), body[:200]
    end = body.index(MARKER_END)
    return int(body[len(MARKER_START):end]), body[end + len(MARKER_END):]


def test_a_flood_keeps_the_newest_output_and_says_what_went(plane):
    flood, calm = plane.client("flood"), plane.client("calm")
    quiet, waited = calm.run(["sh", "-c", "echo calm one; echo calm two"])  # (one stream: two are not ordered)
    assert waited["exit_code"] == 0
    floods = []
    for _ in range(3):
        container, waited = flood.run(["sh", "-c", FLOOD])
        assert waited["exit_code"] == 0
        floods.append(container)

    for container in floods:
        body = flood.logs(container["uuid"])
        dropped, kept = dropped_of(body)
        # Whole chunks go: what is kept is at most the retention, and what
        # was written is all accounted for.
        assert len(kept) <= MIB
        assert dropped + len(kept) == 3000000 + len("\nTHE-END\n")
        assert kept.endswith(b"\nTHE-END\n")
        # The marker once, at the start only.
        assert MARKER_END not in kept
        # Reading only the newest lines needs no marker.
        assert flood.logs(container["uuid"], tail=1) == b"THE-END\n"

    usage = plane.admin.get("/v1/quotas/flood/usage").json()["output"]
    assert usage["limit"] == 2 and 0 < usage["in_use"] <= 2
    # The other project's output is intact and unmarked.
    assert calm.logs(quiet["uuid"]) == b"calm one\ncalm two\n"
    assert plane.admin.get("/v1/quotas/calm/usage").json()["output"]["in_use"] > 0

    # Docker's logs: the marker framed on stderr, first; then the output.
    sdk = docker_sdk(plane, flood)
    try:
        raw = sdk.api.get(
            sdk.api._url("/containers/{0}/logs", floods[-1]["uuid"]), params={"stdout": 1, "stderr": 1}
        ).content
    finally:
        sdk.close()
    stream, size = struct.unpack(">BxxxL", raw[:8])
    assert stream == 2
    dropped, rest = dropped_of(raw[8:8 + size])
    assert rest == b"" and dropped > 0
    assert raw.endswith(b"THE-END\n")


@pytest.mark.parametrize("kind", ["files", "db"])
@pytest_twisted.inlineCallbacks
def test_retention_and_project_quota_on_postgresql(tmp_path, database, kind):
    """
    The same counting and dropping in PostgreSQL (``length`` of ``bytea``,
    several store threads).
    """
    from tests.unit.test_retention import A, B, C, add_container, chunk, counters, kept, make_store, put

    store = make_store(tmp_path, kind, url=database, output_retention=1000, quota_defaults={"output": 0})
    try:
        yield store.set_quota("p", {"output": -1})
        add_container(store, A, "p")
        add_container(store, B, "p")
        add_container(store, C, "q")
        datas = [chunk(300, i) for i in range(5)]
        yield put(store, A, datas)
        assert (yield kept(store, A)) == [(3, datas[2]), (4, datas[3]), (5, datas[4])]
        assert (yield counters(store, A)) == (3, 900, 600)
        # q's quota is 0: nothing of it is kept, and p is not touched.
        yield put(store, C, [chunk(10, 1)])
        assert (yield kept(store, C)) == []
        assert (yield counters(store, C)) == (2, 0, 10)
        assert (yield counters(store, A)) == (3, 900, 600)
    finally:
        yield store.stopService()
        store.engine.dispose()
