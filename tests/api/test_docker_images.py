"""
Images belong to projects (issue 18): through the Docker API and the native
one, on fake engines that hold images and a fake registry, a project sees,
inspects and runs the images it pulled and the operator's, never another
project's; pulls go to the instances the project may use only.
"""

import json

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed

from csvc.wire import commands
from csvc.api.auth import TokenAuth
from csvc.api.docker import DockerAPI
from csvc.api.native import NativeAPI
from csvc.api.root import APIRoot
from csvc.compute.images import ProjectImages, PublicImages, familiar
from csvc.compute.service import ContainerService
from csvc.agents.hub import InstanceUnavailable
from csvc.relay.attach import Relay
from tests.api.conftest import FakeAgentHub, result_of

BASE = "http://csvc.test"

BUSYBOX = "sha256:" + "b" * 64
ALPINE = "sha256:" + "a1" * 32
ALPINE_NEWER = "sha256:" + "a2" * 32
ALPINE_PROJECT_B = "sha256:" + "a3" * 32


def engine_image(image_id, *tags):
    return {"Id": image_id, "RepoTags": list(tags), "RepoDigests": [], "Created": 0, "Size": 1, "Labels": {}}


class ImageAgentHub(FakeAgentHub):
    """
    The fake agent hub whose engines hold images (instance -> id -> image)
    and pull them from ``registry`` (familiar reference -> id).  With
    ``hold_pulls`` a pull puts the image on the engine at once and answers
    when the test fires its Deferred in ``held``.
    """

    def __init__(self, store, journal, clock):
        super().__init__(store, journal, clock)
        self.engines = {}
        self.registry = {}
        self.hold_pulls = False
        self.held = []

    def connected_instances(self):
        return set(self.connected)

    def _find(self, images, name):
        bare = name[len("sha256:"):] if name.startswith("sha256:") else name
        for image in images.values():
            if familiar(name) in [familiar(t) for t in image["RepoTags"]]:
                return image
        if len(bare) >= 4:
            found = [i for i in images.values() if i["Id"][len("sha256:"):].startswith(bare)]
            if len(found) == 1:
                return found[0]
        return None

    def call(self, instance_uuid, command, **kwargs):
        if command not in (commands.ListImages, commands.InspectImage, commands.PullImage):
            return super().call(instance_uuid, command, **kwargs)
        self.calls.append((instance_uuid, command, kwargs))
        if instance_uuid not in self.connected:
            return fail(InstanceUnavailable(f"instance {instance_uuid} is not connected"))
        images = self.engines.setdefault(instance_uuid, {})
        if command is commands.ListImages:
            return succeed({"images": [json.loads(json.dumps(i)) for i in images.values()]})
        if command is commands.InspectImage:
            found = self._find(images, kwargs["name"])
            if found is None:
                return fail(commands.NoSuchImage(f"No such image: {kwargs['name']}"))
            return succeed({"image": dict(found)})
        reference = familiar(kwargs["image"])
        if reference not in self.registry:
            return fail(commands.EngineError(f"pull access denied for {kwargs['image']}"))
        image_id = self.registry[reference]
        for image in images.values():
            if reference in image["RepoTags"]:
                image["RepoTags"].remove(reference)
        images.setdefault(image_id, engine_image(image_id))["RepoTags"].append(reference)
        if self.hold_pulls:
            held = Deferred()
            self.held.append((held, {"id": image_id}))
            return held
        return succeed({"id": image_id})


class World:
    """
    The env's store and tenants, with ``ImageAgentHub`` and both APIs.
    """

    def __init__(self, env, public=None):
        self.env = env
        self.hub = ImageAgentHub(env.store, env.journal, env.clock)
        self.hub.connected.add(env.instance)
        self.hub.engines[env.instance] = {BUSYBOX: engine_image(BUSYBOX, "csvc/busybox:latest")}
        self.hub.registry = {"alpine:latest": ALPINE, "alpine:3.19": ALPINE}
        self.images = ProjectImages(env.store, self.hub, public)
        self.containers = ContainerService(env.store, env.journal, self.hub, env.clock, notifier=env.notifier,
                                           images=self.images)
        self.hub.events = self.containers
        auth = TokenAuth(env.store)
        native = NativeAPI(auth, self.containers, env.store, env.journal)
        relay = Relay(self.containers, env.journal, env.store, env.clock)
        docker = DockerAPI(auth, self.containers, env.store, env.journal, self.hub, relay, env.clock,
                           images=self.images)
        self.http = StubTreq(APIRoot(native.resource(), docker.resource()))

    def settle(self):
        for _ in range(5):
            self.env.clock.advance(0)
            self.http.flush()

    def start(self, client, method, path, params=None, body=None):
        kwargs = {"headers": client.headers({"Content-Type": "application/json"}), "params": params or {}}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
        d = self.http.request(method, BASE + path, **kwargs)
        self.settle()
        return d

    def request(self, client, method, path, params=None, body=None):
        return self.finish(self.start(client, method, path, params, body))

    def finish(self, d):
        self.settle()
        response = result_of(d)
        content = self.http.content(response)
        self.http.flush()
        return response.code, result_of(content)

    def docker(self, client, method, path, params=None, body=None):
        return self.request(client, method, "/v1.45" + path, params, body)

    def pull(self, client, reference):
        code, body = self.docker(client, "POST", "/images/create", params={"fromImage": reference})
        assert code == 200, body
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        return lines[-1]

    def listed(self, client):
        code, body = self.docker(client, "GET", "/images/json")
        assert code == 200, body
        return {image["Id"]: image for image in json.loads(body)}

    def inspect(self, client, name):
        code, body = self.docker(client, "GET", f"/images/{name}/json")
        return code, json.loads(body)

    def run(self, client, image):
        return self.docker(client, "POST", "/containers/create", body={"Image": image})

    def add_instance(self, name, project_id=None, shared=True):
        row, _enroll = result_of(self.env.store.create_instance(name, "local", 10, shared=shared,
                                                                project_id=project_id))
        result_of(self.env.store.update_instance(row["uuid"], status="active"))
        self.hub.connected.add(row["uuid"])
        return row["uuid"]

    def pulled_on(self):
        return [instance for instance, command, _ in self.hub.calls if command is commands.PullImage]


@pytest.fixture
def world(env):
    return World(env)


def no_such_image(code, body, name):
    assert code == 404, body
    message = body["message"] if isinstance(body, dict) else json.loads(body)["message"]
    assert message == f"No such image: {name}"


def test_the_operators_image_is_every_projects(env, world):
    for client in (env.alice, env.bob):
        assert list(world.listed(client)) == [BUSYBOX]
        for name in ("csvc/busybox", "csvc/busybox:latest", BUSYBOX, BUSYBOX[len("sha256:"):][:12]):
            code, image = world.inspect(client, name)
            assert (code, image["Id"]) == (200, BUSYBOX), name
        code, body = world.run(client, "csvc/busybox")
        assert code == 201, body


def test_a_pulled_image_is_the_pulling_projects_only(env, world):
    assert world.pull(env.alice, "alpine")["id"] == ALPINE
    assert set(world.listed(env.alice)) == {BUSYBOX, ALPINE}
    assert world.listed(env.alice)[ALPINE]["RepoTags"] == ["alpine:latest"]
    assert set(world.listed(env.bob)) == {BUSYBOX}
    short = ALPINE[len("sha256:"):][:12]
    for name in ("alpine", "alpine:latest", ALPINE, short):
        assert world.inspect(env.alice, name)[0] == 200, name
        no_such_image(*world.inspect(env.bob, name), name)
    code, body = world.docker(env.bob, "GET", "/info")
    assert json.loads(body)["Images"] == 1
    # Creating from it: the Docker API, by name and by id, and the native one.
    no_such_image(*world.run(env.bob, "alpine"), "alpine:latest")
    no_such_image(*world.run(env.bob, ALPINE), ALPINE)
    code, body = world.request(env.bob, "POST", "/v1/containers", body={"image": "alpine"})
    assert code == 404, body
    assert "No such image" in json.loads(body)["error"]["message"]
    assert env.all_rows() == []
    assert commands.CreateContainer not in world.hub.commands_called()
    code, body = world.run(env.alice, "alpine")
    assert code == 201, body
    code, body = world.request(env.alice, "POST", "/v1/containers", body={"image": ALPINE})
    assert code == 202, body
    assert len(world.hub.calls_of(commands.CreateContainer)) == 2


def test_an_admin_sees_and_runs_every_image(env, world):
    world.pull(env.alice, "alpine")
    assert set(world.listed(env.admin)) == {BUSYBOX, ALPINE}
    assert world.inspect(env.admin, "alpine")[0] == 200
    assert world.run(env.admin, "alpine")[0] == 201


def test_both_projects_pulling_one_image_each_see_their_own_names(env, world):
    world.pull(env.alice, "alpine:3.19")
    world.pull(env.bob, "alpine")
    assert world.listed(env.alice)[ALPINE]["RepoTags"] == ["alpine:3.19"]
    assert world.listed(env.bob)[ALPINE]["RepoTags"] == ["alpine:latest"]
    assert world.run(env.bob, "alpine")[0] == 201
    assert world.run(env.alice, "alpine:3.19")[0] == 201


def test_an_image_the_tag_left_stays_its_projects(env, world):
    world.pull(env.alice, "alpine")
    world.hub.registry["alpine:latest"] = ALPINE_NEWER
    world.pull(env.alice, "alpine")
    # The old image, untagged now, is still alice's: not everyone's.
    assert set(world.listed(env.alice)) == {BUSYBOX, ALPINE, ALPINE_NEWER}
    assert set(world.listed(env.bob)) == {BUSYBOX}
    no_such_image(*world.inspect(env.bob, ALPINE), ALPINE)


def test_another_projects_pull_of_the_tag_is_not_shown_under_it(env, world):
    world.pull(env.alice, "alpine")
    world.hub.registry["alpine:latest"] = ALPINE_PROJECT_B
    world.pull(env.bob, "alpine")
    # The engine's tag is shared (issue 22): alice's name now names bob's
    # image, which alice does not get; her own stays hers.
    no_such_image(*world.run(env.alice, "alpine"), "alpine:latest")
    assert world.inspect(env.alice, ALPINE)[0] == 200
    assert set(world.listed(env.alice)) == {BUSYBOX, ALPINE}


def test_pulling_the_operators_image_leaves_it_everyones(env, world):
    world.hub.registry["csvc/busybox:latest"] = BUSYBOX
    assert world.pull(env.alice, "csvc/busybox")["id"] == BUSYBOX
    assert result_of(env.store.image_claims([BUSYBOX])) == []
    assert world.inspect(env.bob, "csvc/busybox")[0] == 200
    # A pull that brings something new is the puller's, the old image the
    # operator's still.
    world.hub.registry["csvc/busybox:latest"] = ALPINE_NEWER
    world.pull(env.alice, "csvc/busybox")
    assert set(world.listed(env.bob)) == {BUSYBOX}
    assert set(world.listed(env.alice)) == {BUSYBOX, ALPINE_NEWER}


def test_pulling_the_operators_image_under_another_name_does_not_take_it(env, world):
    world.hub.registry["mirror.example/busybox:latest"] = BUSYBOX
    assert world.pull(env.alice, "mirror.example/busybox")["id"] == BUSYBOX
    assert result_of(env.store.image_claims([BUSYBOX])) == []
    for name in ("csvc/busybox", BUSYBOX):
        assert world.inspect(env.bob, name)[0] == 200
    assert world.run(env.bob, "csvc/busybox")[0] == 201


def test_an_image_being_pulled_is_nobodys_until_the_pull_is_recorded(env, world):
    world.hub.hold_pulls = True
    pulling = world.start(env.alice, "POST", "/v1.45/images/create", params={"fromImage": "alpine"})
    # The engine has the image; the pull has not answered yet.
    assert ALPINE in world.hub.engines[env.instance]
    assert world.hub.held
    assert set(world.listed(env.bob)) == {BUSYBOX}
    no_such_image(*world.inspect(env.bob, "alpine"), "alpine")
    held, answer = world.hub.held.pop()
    held.callback(answer)
    code, body = world.finish(pulling)
    assert code == 200 and json.loads(body.splitlines()[-1])["id"] == ALPINE
    assert set(world.listed(env.alice)) == {BUSYBOX, ALPINE}
    assert set(world.listed(env.bob)) == {BUSYBOX}
    claims = result_of(env.store.image_claims([ALPINE]))
    assert claims == [{"project_id": "project-a", "reference": "alpine:latest", "image_id": ALPINE}]


def test_a_failed_pull_claims_nothing(env, world):
    line = world.pull(env.alice, "nothere/app:1")
    assert "pull access denied" in line["error"]
    assert result_of(env.store.image_claims([])) == []


def test_pulls_go_to_the_instances_the_project_may_use_only(env, world):
    own = world.add_instance("alices", project_id="project-a", shared=False)
    world.add_instance("bobs", project_id="project-b", shared=False)
    world.add_instance("nobodys-unshared", shared=False)
    world.pull(env.alice, "alpine")
    assert world.pulled_on() == [own, env.instance]
    assert set(world.listed(env.alice)) == {BUSYBOX, ALPINE}
    assert set(world.listed(env.bob)) == {BUSYBOX}
    # A project with no usable instance connected: the pull says so.
    world.hub.connected.discard(own)
    world.hub.connected.discard(env.instance)
    line = world.pull(env.alice, "alpine")
    assert "no instance is connected" in line["error"]


def test_the_operator_names_the_public_images(env):
    world = World(env, PublicImages.parse("csvc/*, docker.io/library/alpine:3.19"))
    world.hub.engines[env.instance]["sha256:" + "c" * 64] = engine_image("sha256:" + "c" * 64, "tools/x:1")
    world.hub.engines[env.instance][ALPINE] = engine_image(ALPINE, "alpine:3.19")
    assert set(world.listed(env.bob)) == {BUSYBOX, ALPINE}
    no_such_image(*world.inspect(env.bob, "tools/x:1"), "tools/x:1")
    assert world.run(env.bob, "tools/x:1")[0] == 404
    assert set(world.listed(env.admin)) == {BUSYBOX, ALPINE, "sha256:" + "c" * 64}


@pytest.mark.parametrize("given, expected", [
    ("busybox", "busybox:latest"),
    ("docker.io/library/busybox", "busybox:latest"),
    ("library/busybox:1.36", "busybox:1.36"),
    ("index.docker.io/team/app", "team/app:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("quay.io/a/b@sha256:" + "0" * 64, "quay.io/a/b@sha256:" + "0" * 64),
])
def test_familiar_names(given, expected):
    assert familiar(given) == expected


def test_public_images_option():
    assert PublicImages.parse("").patterns is None
    assert PublicImages.parse(" csvc/*, alpine ,docker.io/library/debian*").patterns == (
        "csvc/*", "alpine:latest", "debian*")
    for bad in ("a*b", "*x*", "with space"):
        with pytest.raises(ValueError):
            PublicImages.parse(bad)


def test_public_images_setting():
    from csvc import config

    assert config.resolve({})["public-images"] is None
    assert config.resolve({"public-images": "csvc/*,alpine"})["public-images"] == ("csvc/*", "alpine:latest")
    with pytest.raises(config.ConfigError, match="public-images"):
        config.resolve({"public-images": "csvc/*/x*"})


def test_a_third_pull_of_one_project_is_a_429_and_another_project_pulls(env, world):
    world.hub.hold_pulls = True
    running = [world.start(env.alice, "POST", "/v1.45/images/create", params={"fromImage": "alpine"})
               for _ in range(2)]
    world.settle()
    code, body = world.docker(env.alice, "POST", "/images/create", params={"fromImage": "alpine"})
    assert code == 429 and "2 image pulls running" in json.loads(body)["message"]
    other = world.start(env.bob, "POST", "/v1.45/images/create", params={"fromImage": "alpine"})
    world.settle()
    for held, answer in list(world.hub.held):
        held.callback(answer)
    world.hub.held.clear()
    for d in running + [other]:
        assert world.finish(d)[0] == 200
    world.hub.hold_pulls = False
    assert world.pull(env.alice, "alpine")["id"] == ALPINE  # room again
