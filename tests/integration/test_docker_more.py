"""
The docker SDK on csvc: pause and unpause, rename, top and stats, a
project's named and anonymous volumes, and pruning stopped containers; each
only on the caller's project's own.
"""

import json
import re
import time
import uuid

import docker
import pytest

from csvc.agent.docker_config import ANONYMOUS_VOLUME, engine_volume
from tests.integration.conftest import docker_sdk

IMAGE = "csvc/busybox"


def _running(container, timeout=10):
    deadline = time.monotonic() + timeout
    container.reload()
    while container.status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        container.reload()
    assert container.status == "running"
    return container


def _not_found(call):
    with pytest.raises(docker.errors.NotFound) as missing:
        call()
    assert "No such container" in str(missing.value)


def test_pause_and_unpause(sdk, other, alpha, beta):
    container = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    _not_found(lambda: other.api.pause(container.id))
    container.pause()
    container.reload()
    assert container.status == "paused"
    assert container.attrs["State"]["Paused"] is True
    with pytest.raises(docker.errors.APIError) as again:
        container.pause()
    assert again.value.status_code == 409
    _not_found(lambda: other.api.unpause(container.id))
    container.unpause()
    container.reload()
    assert container.status == "running"
    assert container.attrs["State"]["Paused"] is False
    container.kill()
    container.wait()
    with pytest.raises(docker.errors.APIError) as stopped:
        container.pause()
    assert stopped.value.status_code == 409
    assert "is not running" in str(stopped.value)


def test_rename_within_the_project(sdk, other, alpha, beta):
    suffix = uuid.uuid4().hex[:8]
    first = sdk.containers.create(IMAGE, ["true"], name=f"first-{suffix}")
    second = sdk.containers.create(IMAGE, ["true"], name=f"second-{suffix}")
    first.rename(f"renamed-{suffix}")
    assert sdk.containers.get(f"renamed-{suffix}").id == first.id
    assert sdk.containers.get(first.id).name == f"renamed-{suffix}"
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get(f"first-{suffix}")
    with pytest.raises(docker.errors.APIError) as taken:
        second.rename(f"renamed-{suffix}")
    assert taken.value.status_code == 409
    _not_found(lambda: other.api.rename(first.id, f"stolen-{suffix}"))
    # The engine's name stays csvc-<uuid>.
    engine = docker.from_env()
    assert engine.containers.get(first.id).name.startswith("csvc-")
    assert engine.containers.get(first.id).name != f"renamed-{suffix}"


def test_top_and_stats(sdk, other, alpha, beta):
    container = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    top = container.top()
    assert "PID" in top["Titles"]
    assert any("sleep 300" in " ".join(p) for p in top["Processes"])
    _not_found(lambda: other.api.top(container.id))
    stats = container.stats(stream=False)
    assert stats["id"] == container.id
    assert "memory_stats" in stats and "cpu_stats" in stats
    _not_found(lambda: other.api.stats(container.id, stream=False))
    container.kill()
    container.wait()
    with pytest.raises(docker.errors.APIError) as stopped:
        container.top()
    assert stopped.value.status_code == 409


def test_streamed_stats_until_the_container_stops(sdk, other):
    container = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    # (docker-py does not check the status of a stream: ask plainly.)
    missing = other.api._get(other.api._url("/containers/{0}/stats", container.id), params={"stream": 1})
    assert missing.status_code == 404
    assert "No such container" in missing.json()["message"]
    stream = container.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    for sample in (first, second):
        assert sample["id"] == container.id
        assert sample["name"] == "/" + container.name
        assert sample["memory_stats"]["usage"] > 0
    # One sample after the other, each with the one before it.
    assert second["read"] > first["read"]
    assert second["preread"] == first["read"]
    container.kill()
    # The engine ends the stream when the container stops: so does csvc.
    rest = list(stream)
    assert all(sample["id"] == container.id for sample in rest)


def test_streamed_stats_end_when_the_client_goes_away(sdk, control_plane):
    container = _running(sdk.containers.run(IMAGE, ["sleep", "300"], detach=True))
    response = sdk.api._get(sdk.api._url("/containers/{0}/stats", container.id), params={"stream": 1},
                            stream=True)
    assert response.status_code == 200
    lines = response.iter_lines()
    assert json.loads(next(lines))["id"] == container.id
    response.close()
    # The control plane still serves the container (and another stream).
    again = container.stats(stream=False)
    assert again["id"] == container.id


def test_volumes_of_the_project(sdk, other, alpha, beta):
    name = f"data-{uuid.uuid4().hex[:8]}"
    engine = docker.from_env()
    volume = sdk.volumes.create(name=name)
    try:
        assert volume.name == name
        assert engine.volumes.get(engine_volume("alpha", name)).name == engine_volume("alpha", name)
        assert name in [v.name for v in sdk.volumes.list()]
        assert all(not v.name.startswith("csvc-") for v in sdk.volumes.list())
        assert sdk.volumes.get(name).name == name
        # Another project neither sees nor reaches it.
        assert name not in [v.name for v in other.volumes.list()]
        with pytest.raises(docker.errors.NotFound):
            other.volumes.get(name)
        with pytest.raises(docker.errors.NotFound):
            other.api.remove_volume(name)
        # A container of the project mounts it by its short name.
        out = sdk.containers.run(IMAGE, ["sh", "-c", "echo kept > /data/f; cat /data/f"],
                                 volumes={name: {"bind": "/data", "mode": "rw"}}, remove=True)
        assert out == b"kept\n"
        holder = sdk.containers.create(IMAGE, ["cat", "/data/f"], volumes={name: {"bind": "/data", "mode": "rw"}})
        with pytest.raises(docker.errors.APIError) as busy:
            sdk.volumes.get(name).remove()
        assert busy.value.status_code == 409
        holder.remove(force=True)
        sdk.volumes.get(name).remove()
        with pytest.raises(docker.errors.NotFound):
            sdk.volumes.get(name)
        assert name not in [v.name for v in sdk.volumes.list()]
    finally:
        try:
            engine.volumes.get(engine_volume("alpha", name)).remove(force=True)
        except docker.errors.NotFound:
            pass


def test_prune_removes_the_projects_containers_that_are_not_running(control_plane):
    suffix = uuid.uuid4().hex[:8]
    mine = docker_sdk(control_plane, control_plane.client(f"prune-{suffix}"))
    theirs = docker_sdk(control_plane, control_plane.client(f"prune-other-{suffix}"))
    try:
        # A filter csvc does not know is refused even with nothing to list.
        with pytest.raises(docker.errors.APIError) as unknown:
            mine.containers.list(all=True, filters={"before": "x"})
        assert unknown.value.status_code == 400
        assert "invalid filter 'before'" in str(unknown.value)
        exited = mine.containers.run(IMAGE, ["true"], detach=True)
        assert exited.wait()["StatusCode"] == 0
        created = mine.containers.create(IMAGE, ["true"])
        running = _running(mine.containers.run(IMAGE, ["sleep", "300"], detach=True))
        paused = _running(mine.containers.run(IMAGE, ["sleep", "300"], detach=True))
        paused.pause()
        labelled = mine.containers.create(IMAGE, ["true"], labels={"keep": "yes"})
        other = theirs.containers.create(IMAGE, ["true"])
        # Created before 2000: none.
        assert mine.containers.prune(filters={"until": "2000-01-01T00:00:00Z"})["ContainersDeleted"] == []
        # Only what carries the label.
        report = mine.containers.prune(filters={"label": ["keep=yes"], "until": "1m"})
        assert report["ContainersDeleted"] == [], "created less than a minute ago"
        report = mine.containers.prune(filters={"label": ["keep=yes"]})
        assert report == {"ContainersDeleted": [labelled.id], "SpaceReclaimed": 0}
        report = mine.containers.prune()
        assert sorted(report["ContainersDeleted"]) == sorted([exited.id, created.id])
        assert {c.id for c in mine.containers.list(all=True)} == {running.id, paused.id}
        # Another project's stopped container is not touched.
        assert theirs.containers.get(other.id).status == "created"
        with pytest.raises(docker.errors.APIError) as bad:
            mine.containers.prune(filters={"status": ["exited"]})
        assert bad.value.status_code == 400
        assert "invalid filter 'status'" in str(bad.value)
    finally:
        for client in (mine, theirs):
            for container in client.containers.list(all=True):
                container.remove(force=True)
            client.close()


def _clean(*clients):
    """
    Remove the test projects' containers and volumes, and close the clients.
    """
    for client in clients:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for volume in client.volumes.list():
            volume.remove(force=True)
        client.close()


def test_volume_prune_removes_unused_volumes_of_the_project(control_plane):
    suffix = uuid.uuid4().hex[:8]
    mine = docker_sdk(control_plane, control_plane.client(f"vprune-{suffix}"))
    theirs = docker_sdk(control_plane, control_plane.client(f"vprune-other-{suffix}"))
    try:
        used = mine.volumes.create(name="used")
        mine.volumes.create(name="free")
        mine.volumes.create(name="labelled", labels={"keep": "yes"})
        theirs.volumes.create(name="free")
        holder = mine.containers.create(IMAGE, ["true"], volumes={used.name: {"bind": "/d", "mode": "rw"}})
        # API 1.42 on: without `all`, only anonymous volumes go; csvc's are named.
        assert mine.volumes.prune() == {"VolumesDeleted": [], "SpaceReclaimed": 0}
        report = mine.volumes.prune(filters={"all": "true", "label!": "keep"})
        assert report["VolumesDeleted"] == ["free"]
        assert sorted(v.name for v in mine.volumes.list()) == ["labelled", "used"]
        # Another project's volume of the same name stays.
        assert [v.name for v in theirs.volumes.list()] == ["free"]
        holder.remove()
        assert sorted(mine.volumes.prune(filters={"all": "true"})["VolumesDeleted"]) == ["labelled", "used"]
        with pytest.raises(docker.errors.APIError) as bad:
            mine.volumes.prune(filters={"all": "maybe"})
        assert bad.value.status_code == 400
        # Nothing of a project's to prune among images, networks, build cache.
        assert mine.images.prune() == {"ImagesDeleted": [], "SpaceReclaimed": 0}
        assert mine.networks.prune() == {"NetworksDeleted": []}
        engine = docker.from_env()
        try:
            assert engine.images.get(IMAGE).tags
        finally:
            engine.close()
    finally:
        _clean(mine, theirs)


@pytest.fixture(scope="module")
def volume_image():
    """
    csvc/busybox with a VOLUME of its own, as the images of databases have.
    """
    engine = docker.from_env()
    base = engine.containers.create(IMAGE, ["true"])
    try:
        base.commit(repository="csvc/busybox-volume", tag="latest", changes="VOLUME /seeded")
    finally:
        base.remove()
        engine.close()
    return "csvc/busybox-volume"


def _engine_volumes(prefix):
    engine = docker.from_env()
    try:
        return sorted(v.name for v in engine.volumes.list(filters={"name": prefix}))
    finally:
        engine.close()


def test_anonymous_volumes_are_the_projects_and_go_with_rm_v(control_plane, volume_image):
    suffix = uuid.uuid4().hex[:8]
    project = f"anon-{suffix}"
    prefix = engine_volume(project, "")
    mine = docker_sdk(control_plane, control_plane.client(project))
    theirs = docker_sdk(control_plane, control_plane.client(f"anon-other-{suffix}"))
    try:
        # `-v /data`: a volume of the project's, named as Docker names
        # anonymous ones, and the engine makes no other.
        created = mine.api.create_container(IMAGE, ["sh", "-c", "echo kept > /data/f"], volumes=["/data"])
        container = mine.containers.get(created["Id"])
        [mount] = container.attrs["Mounts"]
        name = mount["Name"]
        assert re.fullmatch(r"[0-9a-f]{64}", name)
        assert (mount["Type"], mount["Destination"], mount["RW"]) == ("volume", "/data", True)
        [listed] = mine.api.containers(all=True)
        assert [m["Name"] for m in listed["Mounts"]] == [name]
        container.start()
        assert container.wait()["StatusCode"] == 0
        [volume] = mine.volumes.list()
        assert volume.name == name
        assert volume.attrs["Labels"] == {ANONYMOUS_VOLUME: ""}
        assert _engine_volumes(prefix) == [prefix + name]
        assert theirs.volumes.list() == []
        # It holds what the container wrote.
        assert mine.containers.run(IMAGE, ["cat", "/v/f"], volumes={name: {"bind": "/v", "mode": "ro"}},
                                   remove=True) == b"kept\n"
        # `docker rm` leaves it; a prune (without `all`) takes it, not a named one.
        container.remove()
        assert [v.name for v in mine.volumes.list()] == [name]
        mine.volumes.create(name="named")
        assert mine.volumes.prune()["VolumesDeleted"] == [name]
        assert [v.name for v in mine.volumes.list()] == ["named"]
        mine.volumes.get("named").remove()

        # `docker rm -v`: its anonymous volumes go, the image's VOLUME's too.
        created = mine.api.create_container(volume_image, ["sh", "-c", "ls -d /seeded /data"], volumes=["/data"])
        mine.api.start(created["Id"])
        assert mine.api.wait(created["Id"])["StatusCode"] == 0
        volumes = mine.volumes.list()
        assert len(volumes) == 2
        assert all(v.attrs["Labels"] == {ANONYMOUS_VOLUME: ""} for v in volumes)
        assert _engine_volumes(prefix) == sorted(prefix + v.name for v in volumes)
        # One is also mounted, by its name, by another container: that one
        # stays (Docker's `rm -v` leaves a volume in use), the other goes.
        held = volumes[0].name
        holder = mine.containers.create(IMAGE, ["true"], volumes={held: {"bind": "/h", "mode": "rw"}})
        mine.api.remove_container(created["Id"], v=True)
        assert [v.name for v in mine.volumes.list()] == [held]
        holder.remove(v=True)
        assert [v.name for v in mine.volumes.list()] == [held], "a volume mounted by name is not anonymous to it"
        mine.volumes.get(held).remove()
        assert _engine_volumes(prefix) == []

        # `docker run --rm`: they go with the container.
        gone = mine.containers.run(volume_image, ["ls", "-d", "/seeded"], auto_remove=True, detach=True)
        assert gone.wait()["StatusCode"] == 0
        deadline = time.monotonic() + 15
        while (_engine_volumes(prefix) or mine.api.containers(all=True)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _engine_volumes(prefix) == [] and mine.api.containers(all=True) == []
    finally:
        _clean(mine, theirs)


def test_native_delete_removes_the_images_anonymous_volumes(control_plane, volume_image):
    project = f"anon-native-{uuid.uuid4().hex[:8]}"
    tenant = control_plane.client(project)
    container, waited = tenant.run(["ls", "-d", "/seeded"], image=volume_image)
    assert waited["exit_code"] == 0
    try:
        assert len(_engine_volumes(engine_volume(project, ""))) == 1
    finally:
        assert tenant.delete(f"/v1/containers/{container['uuid']}").status_code == 204
    assert _engine_volumes(engine_volume(project, "")) == []


def test_sizes_are_the_engines_when_asked(sdk, other):
    container = sdk.containers.run(IMAGE, ["sh", "-c", "dd if=/dev/zero of=/big bs=1024 count=2048 2>/dev/null"],
                                   detach=True)
    try:
        assert container.wait()["StatusCode"] == 0
        [listed] = [c for c in sdk.api.containers(all=True, size=True) if c["Id"] == container.id]
        assert listed["SizeRw"] >= 2 * 1024 * 1024
        assert listed["SizeRootFs"] > listed["SizeRw"]  # the image's files too
        # Not asked: not measured.
        [plain] = [c for c in sdk.api.containers(all=True) if c["Id"] == container.id]
        assert plain["SizeRw"] == 0
        inspected = sdk.api._result(sdk.api._get(sdk.api._url("/containers/{0}/json", container.id),
                                                 params={"size": 1}), json=True)
        assert inspected["SizeRw"] == listed["SizeRw"]
        # Another project's listing measures only its own.
        assert all(c["Id"] != container.id for c in other.api.containers(all=True, size=True))
    finally:
        container.remove(force=True)
