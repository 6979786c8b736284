"""
The Docker engine behind the agent.

Control calls (create, start, stop, kill, remove, inspect, list) go through
the ``docker`` SDK on the agent's own thread pool.  The two long-lived streams
(the event stream and each container's log stream) are read with Twisted's
HTTP client over the engine's UNIX socket instead: a paused transport is the
backpressure, and no thread is held per container.

``DockerEngine`` is the one class of this engine behind ``IEngine``; its
subjects are modules of their own, mixed in or called: the streams and
transfers (``docker_streams.py``), volumes (``docker_volumes.py``), networks
and the projects' default networks (``docker_networks.py``), a container's
create and removal (``docker_create.py``), the names and labels
(``docker_labels.py``).
"""

import contextvars
import inspect
import json
from collections import OrderedDict
from functools import wraps
from io import BytesIO

import docker
from docker import errors as docker_errors
from twisted.internet.defer import fail, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from zope.interface import implementer

from csvc.agent import docker_create, wall
from csvc.agent.docker_labels import (
    LABEL_AUTO_REMOVE, LABEL_INSTANCE, LABEL_PROJECT, LABEL_UUID, engine_name, project_key, share_key,
)
from csvc.agent.docker_networks import DefaultNetworks, DockerNetworks
from csvc.agent.docker_streams import DockerStreams, UNIXEndpoints
from csvc.agent.docker_volumes import DockerVolumes
from csvc.wire.commands import Conflict, EngineError, InvalidSpec, NoSuchContainer, NoSuchImage, Refused
from csvc.agent.engine import IEngine
from csvc.wire.psargs import UnsafePsArgs, check_ps_args
from csvc.agent.shares import EngineShares


def _engine_error(exc):
    if isinstance(exc, docker_errors.ImageNotFound):
        return NoSuchImage(str(exc.explanation or exc))
    if isinstance(exc, docker_errors.NotFound):
        return NoSuchContainer(str(exc.explanation or exc))
    if isinstance(exc, docker_errors.APIError) and exc.status_code == 400:
        return InvalidSpec(str(exc.explanation or exc))
    if isinstance(exc, docker_errors.APIError):
        return EngineError(str(exc.explanation or exc))
    return EngineError(str(exc))


#: The longest grace a stop gives, whatever the control plane asked (the
#: agent's own wall: the control plane clamps to its stop-timeout-max).
STOP_TIMEOUT_MAX = 3600
#: Seconds past a stop's grace the engine has to answer (the kill, the exit).
STOP_ANSWER_SLACK = 60


@implementer(IEngine)
class DockerEngine(DockerStreams, DockerVolumes, DockerNetworks):
    """
    One Docker engine, addressed by csvc container uuid.
    """

    log = Logger()
    name = "docker"

    def __init__(self, reactor, socket_path="/var/run/docker.sock", threads=4, port_rules=None, firewall=None):
        self._reactor = reactor
        self._socket_path = socket_path
        #: csvc.wire.port_rules.PortRules a create's published ports obey
        self._port_rules = port_rules
        #: csvc.agent.firewall.InstanceFirewall, checked again on each
        #: network create (None: none)
        self._firewall = firewall
        self._default_networks = DefaultNetworks()
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="csvc-agent-docker")
        #: each project's share of the pool's threads
        self.shares = EngineShares(threads)
        #: container uuid -> its project's key (from creates and the
        #: inventory), the newest ``_OWNERS``
        self._owners = OrderedDict()
        #: exec id -> its project's key, the newest ``_EXEC_OWNERS``
        self._exec_owners = OrderedDict()
        self._client = None
        pool = HTTPConnectionPool(reactor, persistent=False)
        self._http = Agent.usingEndpointFactory(reactor, UNIXEndpoints(reactor, socket_path), pool=pool)

    def start(self):
        self._pool.start()

    def stop(self):
        self._pool.stop()
        if self._client is not None:
            self._client.close()

    def _sdk(self):
        if self._client is None:
            self._client = docker.DockerClient(base_url=f"unix://{self._socket_path}", timeout=120)
        return self._client

    def _call(self, fn, *args):
        def run():
            try:
                return fn(self._sdk(), *args)
            except docker_errors.DockerException as exc:
                raise _engine_error(exc) from None

        # Within the project's share of the pool (``_OWNER``: set by
        # ``_owned`` from the method's arguments).
        return self.shares.run(_OWNER.get(), lambda: deferToThreadPool(self._reactor, self._pool, run))

    def _owner_of(self, kind, value):
        """
        The share key of a call whose ``kind`` argument is ``value``: the
        project as engine names spell it (``csvc-<key>-...``); None (the
        shared key) for an unknown container.
        """
        if value is None:
            return None
        if kind == "uuid":
            return self._owners.get(value)
        if kind == "exec_id":
            return self._exec_owners.get(value)
        if kind == "spec":
            key = share_key(value["project_id"])
            self._own(value["uuid"], key)
            return key
        if kind == "project_id":
            return share_key(value)
        if kind == "image":
            # Pulls (whose project the command does not say) share a key of
            # their own: at most half the threads, never the inventory's.
            return PULLS
        # "name", "prefix": csvc-<key>-<name>, the key has no "-"
        if value.startswith("csvc-") and "-" in value[5:]:
            return value[5:].split("-", 1)[0]
        return None

    def _learn(self, summaries_and_keys):
        summaries = []
        for summary, key in summaries_and_keys:
            if summary.get("uuid") and key:
                self._own(summary["uuid"], key)
            summaries.append(summary)
        return summaries

    def _own(self, uuid, key):
        self._owners[uuid] = key
        self._owners.move_to_end(uuid)
        while len(self._owners) > _OWNERS:
            self._owners.popitem(last=False)

    def _exec_created(self, exec_id, uuid):
        self._exec_owners[exec_id] = self._owners.get(uuid)
        while len(self._exec_owners) > _EXEC_OWNERS:
            self._exec_owners.popitem(last=False)
        return exec_id

    def _refusal(self, action, uuid, violations):
        """
        The agent's wall refused ``action`` on the container ``uuid``:
        logged (the rules and fields, never a value), and the error to raise.
        """
        why = wall.describe(violations)
        self.log.warn("the wall refused the {action} of container {uuid}: {why}", action=action, uuid=uuid, why=why)
        return Refused(why)

    # -- control -----------------------------------------------------------

    def create(self, spec):
        """
        Create a container from a csvc spec; fires with the engine's id.
        """
        return self._call(docker_create.create, spec, self._port_rules, self._default_networks)

    def start_container(self, uuid):
        return self._call(lambda c: c.api.start(engine_name(uuid)))

    @inlineCallbacks
    def stop_container(self, uuid, timeout):
        """
        The engine's stop (SIGTERM, SIGKILL after ``timeout`` seconds, at
        most ``STOP_TIMEOUT_MAX``), asked over the engine's socket with
        Twisted's HTTP client: waiting for the exit holds no thread of the
        pool (a long ``t`` would hold one for its whole grace).
        """
        timeout = min(max(0, int(timeout)), STOP_TIMEOUT_MAX)
        url = self._url(f"/containers/{engine_name(uuid)}/stop", {"t": timeout})
        d = self._http.request(b"POST", url)
        # The engine answers once the container exited: t, then the kill.
        d.addTimeout(timeout + STOP_ANSWER_SLACK, self._reactor)
        response = yield d
        # 304: it was not running.
        yield self._checked(response)
        yield readBody(response)

    def kill_container(self, uuid, signal):
        return self._call(lambda c: c.api.kill(engine_name(uuid), signal=signal))

    def remove_container(self, uuid, force, volumes=False):
        """
        Remove the container; with ``volumes``, its anonymous volumes too
        (as ``docker rm -v``: not those another container still uses).
        """
        def logged(left):
            for volume, why in left:
                self.log.info("anonymous volume {volume} of {uuid} left: {why}", volume=volume, uuid=uuid, why=why)

        return self._call(docker_create.remove, uuid, force, volumes, self._default_networks).addCallback(logged)

    def pause_container(self, uuid, paused):
        def pause(c):
            try:
                (c.api.pause if paused else c.api.unpause)(engine_name(uuid))
            except docker_errors.APIError as exc:
                if exc.status_code == 409:
                    raise Conflict(str(exc.explanation or exc)) from None
                raise

        return self._call(pause)

    def paused(self, uuid):
        return self._call(lambda c: bool((c.api.inspect_container(engine_name(uuid)).get("State") or {}).get("Paused")))

    def top(self, uuid, ps_args=None):
        # The engine runs ps with these on the instance: the agent's own
        # wall, whatever the control plane let through.
        try:
            words = check_ps_args(ps_args)
        except UnsafePsArgs as exc:
            return fail(InvalidSpec(str(exc)))

        def top(c):
            try:
                return c.api.top(engine_name(uuid), ps_args=" ".join(words) or None)
            except docker_errors.APIError as exc:
                if exc.status_code == 409:
                    raise Conflict(str(exc.explanation or exc)) from None
                raise

        return self._call(top)

    def stats(self, uuid):
        return self._call(lambda c: c.api.stats(engine_name(uuid), stream=False))

    @inlineCallbacks
    def update(self, uuid, update):
        """
        Docker's ``POST /containers/{id}/update`` with ``update`` as its
        body (the SDK's ``update_container`` knows neither NanoCpus nor
        PidsLimit); fires with the engine's warnings.
        """
        violations = wall.update_violations(update)
        if violations:
            raise self._refusal("update", uuid, violations)
        body = FileBodyProducer(BytesIO(json.dumps(update).encode("utf-8")))
        headers = Headers({b"Content-Type": [b"application/json"]})
        url = self._url(f"/containers/{engine_name(uuid)}/update", {})
        response = yield self._checked((yield self._http.request(b"POST", url, headers, body)))
        answer = yield readBody(response)
        try:
            return list(json.loads(answer).get("Warnings") or [])
        except (ValueError, AttributeError):
            return []

    def sizes(self, project_id):
        """
        Fires with ``{uuid: [SizeRw, SizeRootFs]}`` of the project's
        containers on this engine.
        """

        def sizes(c):
            found = c.api.containers(all=True, size=True, filters={"label": f"{LABEL_PROJECT}={project_id}"})
            return {
                (entry.get("Labels") or {})[LABEL_UUID]: [entry.get("SizeRw") or 0, entry.get("SizeRootFs") or 0]
                for entry in found if LABEL_UUID in (entry.get("Labels") or {})
            }

        return self._call(sizes)

    def ports(self, uuid):
        """
        Fires with the container's ``NetworkSettings.Ports`` (published
        ports only).
        """

        def ports(c):
            found = (c.api.inspect_container(engine_name(uuid)).get("NetworkSettings") or {}).get("Ports") or {}
            return {port: bindings for port, bindings in found.items() if bindings}

        return self._call(ports)

    def inspect(self, uuid):
        """
        Fires with the container's summary (``_summary``).
        """
        return self._call(lambda c: _summary(c.api.inspect_container(engine_name(uuid))))

    def health(self, uuid):
        """
        Fires with the engine's ``State.Health`` of the container (its last
        results' output capped), or None without a healthcheck.
        """
        return self._call(lambda c: _health(c.api.inspect_container(engine_name(uuid))))

    def facts(self):
        """
        Fires with what the engine says of itself, for ``docker info``.
        """

        def read(c):
            info = c.api.info()
            return {k: info.get(k) for k in ("NCPU", "MemTotal", "ServerVersion", "OperatingSystem")}

        return self._call(read)

    def images(self):
        return self._call(lambda c: c.api.images())

    def inspect_image(self, name):
        return self._call(lambda c: c.api.inspect_image(name))

    def pull_image(self, image):
        def pull(c):
            repository, tag = image, None
            last = image.rsplit("/", 1)[-1]
            if "@" not in image and ":" in last:
                repository, tag = image.rsplit(":", 1)
            for event in c.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise EngineError(event["error"])
            return c.api.inspect_image(image)["Id"]

        return self._call(pull)

    def inventory(self):
        """
        Fires with the summaries of every csvc container on the engine.
        """
        return self._call(
            lambda c: [
                (_summary(x.attrs), project_key(x.attrs))
                # A container removed between the listing and its inspection
                # (an auto-remove, another client) is no longer inventory.
                for x in c.containers.list(all=True, filters={"label": LABEL_UUID}, ignore_removed=True)
            ]
        ).addCallback(self._learn)

    def resize(self, uuid, height, width):
        return self._call(lambda c: c.api.resize(engine_name(uuid), height=height, width=width))

    # -- exec --------------------------------------------------------------

    def exec_create(self, uuid, spec):
        """
        Create an exec in the container; fires with the engine's exec id.
        """
        violations = wall.exec_violations(spec)
        if violations:
            return fail(self._refusal("exec", uuid, violations))
        return self._call(_exec_create, uuid, spec).addCallback(self._exec_created, uuid)

    def exec_start(self, exec_id, tty, protocol):
        """
        Start the exec on a hijacked stream given to ``protocol``: its output
        (multiplexed unless TTY) comes in, what the protocol writes is its
        stdin, a write-close closes its stdin.
        """
        body = {"Detach": False, "Tty": bool(tty)}
        return self._hijack("POST", f"/exec/{exec_id}/start", {}, body, protocol)

    def exec_inspect(self, exec_id):
        """
        Fires with ``{"running": bool, "exit_code": int or None}``.
        """

        def inspect(c):
            attrs = c.api.exec_inspect(exec_id)
            return {"running": bool(attrs.get("Running")), "exit_code": attrs.get("ExitCode")}

        return self._call(inspect)

    def exec_resize(self, exec_id, height, width):
        return self._call(lambda c: c.api.exec_resize(exec_id, height=height, width=width))


#: Containers and exec ids whose project the agent remembers (for shares
#: only: one forgotten is of the shared key).
_OWNERS = 65536
_EXEC_OWNERS = 4096

#: The share key of the call being made (``DockerEngine._call``).
_OWNER = contextvars.ContextVar("csvc_engine_share", default=None)

#: method -> the argument that says whose call it is (methods not named
#: here are of no project: images, facts, inventory, streams)
_OWNED_BY = {
    "create": "spec", "start_container": "uuid", "kill_container": "uuid", "remove_container": "uuid",
    "pause_container": "uuid", "paused": "uuid", "top": "uuid", "stats": "uuid", "update": "uuid",
    "ports": "uuid", "inspect": "uuid", "health": "uuid", "resize": "uuid", "exec_create": "uuid",
    "connect_network": "uuid", "disconnect_network": "uuid", "sizes": "project_id",
    "exec_inspect": "exec_id", "exec_resize": "exec_id",
    "list_volumes": "prefix", "list_networks": "prefix", "create_volume": "name", "inspect_volume": "name",
    "remove_volume": "name", "create_network": "name", "inspect_network": "name", "remove_network": "name",
    "pull_image": "image",
}

#: The share key of image pulls (no project's key has a "~")
PULLS = "~pulls"


def _owned(method, argument):
    signature = inspect.signature(method)

    @wraps(method)
    def owned(self, *args, **kwargs):
        value = signature.bind(self, *args, **kwargs).arguments.get(argument)
        token = _OWNER.set(self._owner_of(argument, value))
        try:
            return method(self, *args, **kwargs)
        finally:
            _OWNER.reset(token)

    return owned


for _name, _argument in _OWNED_BY.items():
    setattr(DockerEngine, _name, _owned(getattr(DockerEngine, _name), _argument))


def _summary(attrs):
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    return {
        "uuid": labels.get(LABEL_UUID),
        "instance": labels.get(LABEL_INSTANCE),
        "engine_id": attrs.get("Id"),
        "state": state.get("Status"),
        "running": bool(state.get("Running")),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "tty": bool(config.get("Tty")),
        "auto_remove": labels.get(LABEL_AUTO_REMOVE) == "1",
    }


#: At most this much of each healthcheck result's output is reported (the
#: engine keeps the last five results).
HEALTH_OUTPUT = 2048


def _health(attrs):
    health = (attrs.get("State") or {}).get("Health")
    if not health:
        return None
    log = [dict(entry, Output=(entry.get("Output") or "")[:HEALTH_OUTPUT]) for entry in (health.get("Log") or [])[-5:]]
    return {"Status": health.get("Status"), "FailingStreak": health.get("FailingStreak", 0), "Log": log}


def _exec_create(client, uuid, spec):
    result = client.api.exec_create(
        engine_name(uuid),
        spec["command"],
        stdout=True,
        stderr=True,
        stdin=bool(spec.get("interactive")),
        tty=bool(spec.get("tty")),
        environment=dict(spec.get("environment") or {}) or None,
        workdir=spec.get("workdir") or None,
        user=spec.get("user") or "",
        # (Only past the wall: an admin's.)
        privileged=bool(spec.get("privileged")),
    )
    return result["Id"]
