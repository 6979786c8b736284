"""
The Docker engine behind the agent.

Control calls (create, start, stop, kill, remove, inspect, list) go through
the ``docker`` SDK on the agent's own thread pool.  The two long-lived streams
(the event stream and each container's log stream) are read with Twisted's
HTTP client over the engine's UNIX socket instead: a paused transport is the
backpressure, and no thread is held per container.
"""

import contextvars
import inspect
import json
from collections import OrderedDict
from functools import wraps
import re
import threading
from contextlib import contextmanager
from io import BytesIO
from urllib.parse import urlencode

import docker
from docker import errors as docker_errors
from twisted.internet.defer import fail, inlineCallbacks, returnValue
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from csvc.agent import docker_config, wall
from csvc.wire.commands import (
    Conflict, EngineError, InvalidSpec, NoSuchContainer, NoSuchImage, NoSuchNetwork, NoSuchPath, NoSuchVolume,
    Refused,
)
from csvc.agent.engine import IEngine
from csvc.agent.hijack import HijackedStream
from csvc.wire.psargs import UnsafePsArgs, check_ps_args
from csvc.agent.shares import EngineShares

LABEL_UUID = "csvc.uuid"
LABEL_PROJECT = "csvc.project"
#: The instance whose control plane made the container: how a registration
#: tells its own engine containers from those of other instances (and
#: control planes) sharing the engine.
LABEL_INSTANCE = "csvc.instance"
LABEL_AUTO_REMOVE = "csvc.auto_remove"

#: Docker's durable log driver that keeps full speed (DESIGN.md).
LOG_DRIVER = "local"
#: The agent recovers output after its own restart by reading the engine's
#: log from the start; rotation must not drop what the store may still lack.
#: 8 x 128 MiB is kept per container (the driver compresses rotated files).
LOG_OPTIONS = {"max-size": "128m", "max-file": "8"}


class _QuietUNIXEndpoint(UNIXClientEndpoint):
    def connect(self, protocolFactory):
        # One connection per log stream: do not log each one's start and
        # stop (``Factory.noisy``).
        protocolFactory.noisy = False
        return super().connect(protocolFactory)


@implementer(IAgentEndpointFactory)
class _UNIXEndpoints:
    def __init__(self, reactor, path):
        self._reactor = reactor
        self._path = path

    def endpointForURI(self, uri):
        return _QuietUNIXEndpoint(self._reactor, self._path)


def _http_error(code, message):
    """
    The engine's error answer (status and message) as a contract error.
    """
    if code == 404:
        if "No such container" in message:
            return NoSuchContainer(message)
        return NoSuchPath(message)
    if code == 400:
        return InvalidSpec(message)
    if code == 409:
        return Conflict(message)
    return EngineError(message)


#: Largest error body read from the engine.
_ERROR_BODY = 64 * 1024


def _message(body):
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body[:_ERROR_BODY].decode("utf-8", "replace")


#: kind -> (path, query) of a download on the engine
_DOWNLOADS = {
    "export": ("/containers/{}/export", lambda options: {}),
    "archive": ("/containers/{}/archive", lambda options: {"path": options["path"]}),
    "changes": ("/containers/{}/changes", lambda options: {}),
    "stats": ("/containers/{}/stats", lambda options: {"stream": 1}),
}


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
class DockerEngine:
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
        self._http = Agent.usingEndpointFactory(reactor, _UNIXEndpoints(reactor, socket_path), pool=pool)

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
        return self._call(_create, spec, self._port_rules, self._default_networks)

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

        return self._call(_remove, uuid, force, volumes, self._default_networks).addCallback(logged)

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

    # -- transfers ---------------------------------------------------------

    @inlineCallbacks
    def _checked(self, response):
        if response.code < 300:
            return response
        body = b"" if response.code == 304 else (yield readBody(response))
        raise _http_error(response.code, _message(body) or f"the engine answered {response.code}")

    @inlineCallbacks
    def download(self, uuid, kind, options, protocol):
        """
        GET the body of a download (``_DOWNLOADS``) into ``protocol``;
        fires with ``{"path_stat": ...}`` (archives) once the engine answered.
        """
        path, query = _DOWNLOADS[kind]
        response = yield self._http.request(b"GET", self._url(path.format(engine_name(uuid)), query(options)))
        yield self._checked(response)
        info = {}
        if kind == "archive":
            info["path_stat"] = _path_stat(response)
        response.deliverBody(protocol)
        return info

    @inlineCallbacks
    def archive_stat(self, uuid, path):
        """
        Fires with the engine's ``X-Docker-Container-Path-Stat`` of ``path``.
        """
        url = self._url(f"/containers/{engine_name(uuid)}/archive", {"path": path})
        response = yield self._http.request(b"HEAD", url)
        if response.code == 404:
            raise NoSuchPath(f"Could not find the file {path} in container {engine_name(uuid)}")
        yield self._checked(response)
        return _path_stat(response)

    @inlineCallbacks
    def upload(self, uuid, options, body):
        """
        PUT ``body`` (an ``IBodyProducer`` of a tar) to be extracted at
        ``options["path"]``; fires once the engine answered 200.
        """
        query = {"path": options["path"]}
        for name in ("noOverwriteDirNonDir", "copyUIDGID"):
            if options.get(name):
                query[name] = "1"
        url = self._url(f"/containers/{engine_name(uuid)}/archive", query)
        headers = Headers({b"Content-Type": [b"application/x-tar"]})
        response = yield self._http.request(b"PUT", url, headers, body)
        yield self._checked(response)
        yield readBody(response)

    # -- volumes -----------------------------------------------------------

    def _volume_call(self, fn, *args):
        def run(c, *args):
            try:
                return fn(c, *args)
            except docker_errors.NotFound as exc:
                raise NoSuchVolume(str(exc.explanation or exc)) from None
            except docker_errors.APIError as exc:
                if exc.status_code == 409:
                    raise Conflict(str(exc.explanation or exc)) from None
                raise

        return self._call(run, *args)

    def list_volumes(self, prefix):
        def listed(c):
            found = c.api.volumes(filters={"name": prefix}).get("Volumes") or []
            return [v for v in found if v["Name"].startswith(prefix)]

        return self._volume_call(listed)

    def create_volume(self, name, labels):
        return self._volume_call(lambda c: c.api.create_volume(name, labels=labels or None))

    def inspect_volume(self, name):
        return self._volume_call(lambda c: c.api.inspect_volume(name))

    def remove_volume(self, name, force):
        return self._volume_call(lambda c: c.api.remove_volume(name, force=force))

    # -- networks ----------------------------------------------------------

    def _network_call(self, fn, *args):
        def run(c, *args):
            try:
                return fn(c, *args)
            except docker_errors.NotFound as exc:
                message = str(exc.explanation or exc)
                if "no such container" in message.lower():
                    raise NoSuchContainer(message) from None
                raise NoSuchNetwork(message) from None
            except docker_errors.APIError as exc:
                # The engine's 403 for networks: removing one in use,
                # connecting a container twice.
                if exc.status_code in (403, 409):
                    raise Conflict(str(exc.explanation or exc)) from None
                raise

        return self._call(run, *args)

    def list_networks(self, prefix, names):
        def listed(c):
            found = c.api.networks(filters={"name": prefix}) if prefix else []
            found = [n for n in found if n["Name"].startswith(prefix)]
            if names:
                found += [n for n in c.api.networks(names=list(names)) if n["Name"] in names]
            return found

        return self._network_call(listed)

    def create_network(self, name, options):
        def create(c):
            created = c.api.create_network(
                name, driver="bridge", labels=options.get("Labels") or None, check_duplicate=True,
                internal=bool(options.get("Internal")), attachable=bool(options.get("Attachable")),
                options=docker_config.network_driver_options(name),
            )
            return c.api.inspect_network(created["Id"])

        d = self._network_call(create)
        if self._firewall is not None:
            d.addCallback(lambda network: self._firewall.apply().addCallback(lambda _: network))
        return d

    def inspect_network(self, name):
        return self._network_call(lambda c: c.api.inspect_network(name))

    def remove_network(self, name):
        return self._network_call(lambda c: c.api.remove_network(name))

    def connect_network(self, uuid, name, aliases):
        def connect(c):
            labels = (c.api.inspect_container(engine_name(uuid)).get("Config") or {}).get("Labels") or {}
            violations = wall.connect_violations(name, labels.get(LABEL_PROJECT, ""))
            if violations:
                return violations
            c.api.connect_container_to_network(engine_name(uuid), name, aliases=aliases or None)
            return None

        def connected(violations):
            if violations:
                raise self._refusal("network connect", uuid, violations)

        return self._network_call(connect).addCallback(connected)

    def disconnect_network(self, uuid, name, force):
        return self._network_call(
            lambda c: c.api.disconnect_container_from_network(engine_name(uuid), name, force=force)
        )

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
                (_summary(x.attrs), _project_key(x.attrs))
                # A container removed between the listing and its inspection
                # (an auto-remove, another client) is no longer inventory.
                for x in c.containers.list(all=True, filters={"label": LABEL_UUID}, ignore_removed=True)
            ]
        ).addCallback(self._learn)

    # -- streams -----------------------------------------------------------

    def _url(self, path, query):
        return f"http://docker{path}?{urlencode(query)}".encode("ascii")

    @inlineCallbacks
    def _stream(self, path, query, protocol):
        response = yield self._http.request(b"GET", self._url(path, query))
        if response.code != 200:
            body = yield readBody(response)
            try:
                message = json.loads(body)["message"]
            except (ValueError, KeyError, TypeError):
                message = body.decode("utf-8", "replace")
            if response.code == 404:
                raise NoSuchContainer(message)
            raise EngineError(message)
        response.deliverBody(protocol)
        returnValue(response)

    def follow_logs(self, engine_id, protocol):
        """
        Stream the container's whole log into ``protocol``, following while
        the container runs.
        """
        query = {"follow": 1, "stdout": 1, "stderr": 1}
        return self._stream(f"/containers/{engine_id}/logs", query, protocol)

    def _hijack(self, method, path, query, body, protocol):
        stream = HijackedStream(method, f"{path}?{urlencode(query)}", body, protocol)
        d = connectProtocol(UNIXClientEndpoint(self._reactor, self._socket_path), stream)
        d.addCallback(lambda _: stream.ready)
        return d

    def attach(self, engine_id, protocol, stdin=False, output=True):
        """
        Attach ``protocol`` to the container's streams: its output (stdout
        and stderr, multiplexed unless TTY) when ``output``, and its stdin
        (what the protocol writes; a write-close closes the container's
        stdin if it was created with ``StdinOnce``) when ``stdin``.
        """
        query = {"stream": 1, "stdout": int(output), "stderr": int(output), "stdin": int(stdin)}
        return self._hijack("POST", f"/containers/{engine_id}/attach", query, None, protocol)

    def resize(self, uuid, height, width):
        return self._call(lambda c: c.api.resize(engine_name(uuid), height=height, width=width))

    def follow_events(self, protocol):
        """
        Stream the engine's container ``start``, ``die`` and ``destroy``
        events for csvc containers into ``protocol`` (JSON lines).
        """
        filters = {"type": ["container"], "label": [LABEL_UUID], "event": ["start", "die", "destroy"]}
        return self._stream("/events", {"filters": json.dumps(filters)}, protocol)

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
}


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


def share_key(project_id):
    """
    A project's share key: its name as the engine's names spell it.
    """
    return docker_config.engine_volume(project_id, "")[len("csvc-"):-1]


def _project_key(attrs):
    project = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_PROJECT)
    return share_key(project) if project else None


def engine_name(uuid):
    """
    The engine's name for a csvc container: unique per engine, whatever the
    tenant named it.
    """
    return f"csvc-{uuid}"


def _create(client, spec, port_rules=None, default_networks=None):
    labels = dict(spec.get("labels") or {})
    labels[LABEL_UUID] = spec["uuid"]
    labels[LABEL_PROJECT] = spec["project_id"]
    labels.pop(LABEL_INSTANCE, None)
    if spec.get("instance_uuid"):
        labels[LABEL_INSTANCE] = spec["instance_uuid"]
    if spec.get("auto_remove"):
        labels[LABEL_AUTO_REMOVE] = "1"
    host = {
        "LogConfig": {"Type": LOG_DRIVER, "Config": dict(LOG_OPTIONS)},
        # csvc removes auto_remove containers itself, once their output is
        # persisted: the engine's AutoRemove could race the output reader.
        "AutoRemove": False,
    }
    if spec.get("memory"):
        host["Memory"] = int(spec["memory"]) * 1024 * 1024
    requested = (spec.get("docker_config") or {}).get("HostConfig") or {}
    if spec.get("cpu") and not (requested.get("CpuQuota") or requested.get("CpuPeriod")):
        # (A limit given as a CFS quota is the client's own, merged below:
        # the engine refuses NanoCpus beside it.)
        host["NanoCpus"] = int(float(spec["cpu"]) * 1e9)
    interactive = bool(spec.get("interactive"))
    config = {
        "Image": spec["image"],
        "Cmd": spec.get("command") or None,
        "Entrypoint": spec.get("entrypoint"),
        "Env": [f"{k}={v}" for k, v in (spec.get("environment") or {}).items()],
        "WorkingDir": spec.get("workdir") or "",
        "Labels": labels,
        "Tty": bool(spec.get("tty")),
        "OpenStdin": interactive,
        # With StdinOnce the engine closes the container's stdin when the
        # attach that writes it closes its side: how "close stdin" reaches
        # the process (as with `docker run -i`).
        "StdinOnce": interactive if spec.get("stdin_once") is None else bool(spec["stdin_once"]),
        "AttachStdin": interactive,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host,
    }
    # The image's own VOLUME paths get the project's anonymous volumes too.
    image_volumes = (client.api.inspect_image(spec["image"]).get("Config") or {}).get("Volumes") or {}
    if default_networks is None or not docker_config.on_default_network(requested):
        return _create_walled(client, spec, docker_config.merge(config, spec, image_volumes, None, port_rules))
    # The project's own default network, never the engine's bridge; not
    # removed (its last container gone) before the container is made.
    with default_networks.held(client, spec["project_id"]) as network_id:
        return _create_walled(client, spec, docker_config.merge(config, spec, image_volumes, network_id, port_rules))


def _create_walled(client, spec, config):
    _walled(client, spec, config)
    result = client.api.create_container_from_config(config, name=engine_name(spec["uuid"]))
    return result["Id"]


#: The label of a project's default network (``docker_config.default_network``).
LABEL_DEFAULT_NETWORK = "csvc.default_network"


class DefaultNetworks:
    """
    The projects' default networks on this engine, made on demand and
    removed with the project's last container on them (each takes one of
    the engine's address pools).  A project's makes, creates of containers
    on it and removals take turns (a lock per project: they run on the
    pool's threads); two agents sharing the engine may still both make one,
    and then every caller keeps the oldest and the others are removed.
    """

    def __init__(self):
        self._lock = threading.Lock()
        #: project -> [its lock, how many hold or wait for it]
        self._projects = {}

    @contextmanager
    def _turn(self, project_id):
        with self._lock:
            entry = self._projects.setdefault(project_id, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if not entry[1]:
                    del self._projects[project_id]

    @contextmanager
    def held(self, client, project_id):
        """
        The engine id of the project's default network (made if missing),
        not removed before the block (the container's create) is done.
        Runs on a pool thread.
        """
        with self._turn(project_id):
            yield self._ensure(client, project_id)

    def ensure(self, client, project_id):
        with self.held(client, project_id) as network_id:
            return network_id

    def release(self, client, project_id):
        """
        Remove the project's default network if no container (running or
        not) is on it any more.  Runs on a pool thread.
        """
        with self._turn(project_id):
            for network in _named_networks(client, docker_config.default_network(project_id)):
                if client.api.containers(all=True, filters={"network": network["Id"]}):
                    continue
                try:
                    client.api.remove_network(network["Id"])
                except docker_errors.APIError:
                    pass  # in use after all (another agent's), or gone

    def _ensure(self, client, project_id):
        name = docker_config.default_network(project_id)
        found = _named_networks(client, name)
        if not found:
            try:
                client.api.create_network(
                    name, driver="bridge", check_duplicate=True,
                    labels={LABEL_PROJECT: project_id, LABEL_DEFAULT_NETWORK: "1"},
                    options=docker_config.network_driver_options(name),
                )
            except docker_errors.APIError:
                # Made meanwhile by another agent on this engine: a 409 when
                # its name was there first, a 500 ("same bridge name") when
                # both passed the name check at once.  Found below, or not.
                pass
            found = _named_networks(client, name)
        if not found:
            raise EngineError(f"the default network of project {project_id} could not be made")
        kept = min(found, key=_creation_order)
        for extra in found:
            if extra["Id"] != kept["Id"]:
                try:
                    client.api.remove_network(extra["Id"])
                except docker_errors.APIError:
                    pass  # in use or gone: every maker keeps the oldest anyway
        return kept["Id"]


def _named_networks(client, name):
    return [n for n in client.api.networks(names=[name]) if n.get("Name") == name]


_CREATED = re.compile(r"(.*?)(?:\.([0-9]+))?(Z|[+-][0-9:]+)?")


def _creation_order(network):
    """
    A network's place in the order they were made: its ``Created``
    (RFC 3339, its fraction's trailing zeros trimmed by the engine), then
    its id.
    """
    match = _CREATED.fullmatch(network.get("Created") or "")
    seconds, fraction = (match.group(1), match.group(2) or "") if match else ("", "")
    return seconds, fraction.ljust(9, "0"), network["Id"]


#: At most this many containers and networks a create names are looked up
#: to tell whether they are the project's (the others are not).
_LOOKUPS = 4


def _walled(client, spec, config):
    """
    Raise ``Refused`` unless the agent's wall lets ``config`` (the final
    create body) go to the engine.
    """
    project = spec["project_id"]

    def project_of(inspect, ident, labels):
        try:
            return labels(inspect(ident)).get(LABEL_PROJECT)
        except docker_errors.NotFound:
            return None

    containers = {
        ident for ident in sorted(wall.joined_containers(config))[:_LOOKUPS]
        if project_of(client.api.inspect_container, ident,
                      lambda attrs: (attrs.get("Config") or {}).get("Labels") or {}) == project
    }
    networks = {
        ref for ref in sorted(wall.network_refs(config, project))[:_LOOKUPS]
        if project_of(client.api.inspect_network, ref, lambda attrs: attrs.get("Labels") or {}) == project
    }
    violations = wall.create_violations(config, project, admin=spec.get("admin") is True,
                                        project_containers=containers, project_networks=networks)
    if violations:
        raise Refused(wall.describe(violations))


def _remove(client, uuid, force, volumes, default_networks=None):
    """
    Remove the container (and with ``volumes`` its anonymous volumes; its
    project's default network if it was the last on it);
    ``[(volume, why)]`` for those left.
    """
    name = engine_name(uuid)
    anonymous = []
    project = None
    if volumes or default_networks is not None:
        attrs = client.api.inspect_container(name)
        project = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_PROJECT, "")
    if volumes:
        # Only those csvc named for this container: a named volume it mounts stays.
        anonymous = [
            mount["Name"] for mount in attrs.get("Mounts") or []
            if mount.get("Type") == "volume" and mount.get("Name") == docker_config.engine_volume(
                project, docker_config.anonymous_volume(uuid, mount.get("Destination") or ""))
        ]
    client.api.remove_container(name, force=force)
    left = []
    for volume in anonymous:
        try:
            client.api.remove_volume(volume)
        except docker_errors.APIError as exc:
            # In use by another container (mounted by its name), or gone:
            # Docker's own `rm -v` leaves it too.
            left.append((volume, str(exc.explanation or exc)))
    if default_networks is not None and project:
        default_networks.release(client, project)
    return left


def _path_stat(response):
    values = response.headers.getRawHeaders(b"X-Docker-Container-Path-Stat") or [b""]
    return values[0].decode("ascii", "replace")


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
