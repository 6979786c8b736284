"""
The native REST API driven synchronously through ``treq.testing.StubTreq``:
the real Klein app, authentication, container service, journal and SQL (on a
SQLite file), with the store's thread pool replaced by the calling thread, a
``Clock`` for time and a fake agent hub that answers as an agent would.  No
Docker, no network, no threads.
"""

import json
import threading
from dataclasses import dataclass

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from csvc.wire import commands
from csvc.api.auth import TokenAuth
from csvc.api.native import NativeAPI
from csvc.compute.service import ContainerService
from csvc.notify.notifier import Notifier
from csvc.notify.destinations import Destinations
from csvc.notify.subscriptions import Subscriptions
from csvc.agents.hub import AgentHub, InstanceUnavailable
from csvc.stdio.journal import Journal
from csvc.store.db import Store, make_engine, upgrade
from tests.resolvers import TableResolver

BASE = "http://csvc.test"

#: an image the fake agent does not have
MISSING_IMAGE = "missing/image:latest"

#: when the tests start, as the Clock tells it (2023-11-14T22:13:20Z)
EPOCH = 1_700_000_000


class SynchronousStore(Store):
    """
    The real store and its SQL, each unit of work run at once on the calling
    thread instead of the store's thread pool.
    """

    def _run(self, thd, *args, **kwargs):
        try:
            with self.engine.begin() as conn:
                result = thd(conn, *args, **kwargs)
        except Exception:
            return fail(Failure())
        return succeed(result)


class FakeAgentHub(AgentHub):
    """
    An agent hub whose agents answer at once, as a real agent would, and which
    records every call.  After a stop or a SIGKILL it reports the container's
    exit ``exit_delay`` seconds later on the Clock (never, when None), the way
    an agent's ``Exited`` box arrives after its answer.
    """

    EXIT_CODES = {commands.StopContainer: 0, commands.KillContainer: 137}

    def __init__(self, store, journal, clock):
        super().__init__(store, journal, clock)
        #: who hears the fake agents' reports: the container service, which
        #: the test environment makes after this hub (a real agent's link
        #: is given it when the link is made)
        self.events = None
        self.calls = []
        self.connected = set()
        self.exit_delay = 0

    def commands_called(self):
        return [command for _instance, command, _kwargs in self.calls]

    def calls_of(self, command):
        return [kwargs for _instance, c, kwargs in self.calls if c is command]

    def is_connected(self, instance_uuid):
        return instance_uuid in self.connected

    def call(self, instance_uuid, command, **kwargs):
        self.calls.append((instance_uuid, command, kwargs))
        if instance_uuid not in self.connected:
            return fail(InstanceUnavailable(f"instance {instance_uuid} is not connected"))
        if command is commands.CreateContainer:
            if kwargs["spec"]["image"] == MISSING_IMAGE:
                return fail(commands.NoSuchImage(f"no such image: {MISSING_IMAGE}"))
            return succeed({"engine_id": "e" * 64})
        if command in (commands.StopContainer, commands.KillContainer):
            exits = command is commands.StopContainer or kwargs["signal"] in ("SIGKILL", "9")
            if exits and self.exit_delay is not None:
                self._clock.callLater(self.exit_delay, self.report_exit, kwargs["uuid"], self.EXIT_CODES[command])
            return succeed({})
        if command in (commands.StartContainer, commands.RemoveContainer):
            return succeed({})
        return fail(AssertionError(f"the fake agent does not answer {command.__name__}"))

    def report_exit(self, container_uuid, exit_code, last_seq=None, finished_at="2023-11-14T22:20:00.123456789Z"):
        """
        The agent's ``Exited`` box: every chunk up to ``last_seq`` is sent.
        """
        if last_seq is None:
            last_seq = self._journal.persisted_seq(container_uuid)
        return self.events.on_exited(container_uuid, exit_code, last_seq, finished_at)


class RecordingSink:
    """
    A notification sink that keeps every ``(project_id, envelope)``.
    """

    def __init__(self):
        self.received = []

    def start(self):
        pass

    def stop(self):
        return None

    def deliver(self, envelope, project_id):
        self.received.append((project_id, envelope))

    def event_types(self, project_id=None):
        return [e["event_type"] for p, e in self.received if project_id is None or p == project_id]


def result_of(d):
    """
    The result a Deferred has already fired with (raising its failure).
    """
    results = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def pending(d):
    """
    Whether a Deferred has yet to fire (it is left as it was either way).
    """
    results = []

    def seen(result):
        results.append(True)
        return result

    d.addBoth(seen)
    return not results


@dataclass
class Reply:
    code: int
    headers: object
    body: bytes

    def json(self):
        assert self.headers.getRawHeaders(b"Content-Type") == [b"application/json"], self.body
        return json.loads(self.body)

    def error(self, code):
        """
        The API's error body, checked for shape and code.
        """
        assert self.code == code, (self.code, self.body)
        body = self.json()
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"code", "title", "message", "request_id"}
        assert error["code"] == code
        assert error["request_id"].startswith("req-")
        return error


class Client:
    """
    One tenant (or nobody, without a token) of the API.
    """

    def __init__(self, env, token=None, project=None):
        self._env = env
        self.token = token
        self.project = project

    def headers(self, extra=None):
        headers = {}
        if self.token is not None:
            headers["X-Auth-Token"] = self.token
        if self.project is not None:
            headers["X-Auth-Project-Id"] = self.project
        headers.update(extra or {})
        return headers

    def start(self, method, path, body=None, data=None, headers=None):
        """
        Send a request; a Deferred of the treq response (which may still be
        pending when the API answers later).
        """
        kwargs = {"headers": self.headers(headers)}
        if body is not None:
            kwargs["json"] = body
        if data is not None:
            kwargs["data"] = data
        d = self._env.http.request(method, BASE + path, **kwargs)
        self._env.settle()
        return d

    def finish(self, d):
        """
        The whole reply to a request the API has answered.
        """
        self._env.settle()
        response = result_of(d)
        body = self._env.http.content(response)
        self._env.settle()
        return Reply(response.code, response.headers, result_of(body))

    def request(self, method, path, body=None, data=None, headers=None):
        return self.finish(self.start(method, path, body, data, headers))

    def stream(self, path):
        """
        GET a streamed response and read its body as it arrives: the
        response, the list of byte strings received so far, and a Deferred
        that fires when the body ends.
        """
        response = result_of(self.start("GET", path))
        received = []
        done = self._env.http.collect(response, received.append)
        self._env.settle()
        return response, received, done

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, **spec):
        """
        Create a container (busybox unless told); its view.
        """
        spec.setdefault("image", "busybox")
        reply = self.post("/v1/containers", spec)
        assert reply.code == 202, reply.body
        return reply.json()


class Environment:
    def __init__(self, tmp_path):
        self.clock = Clock()
        self.clock.advance(EPOCH)
        self.engine = make_engine(f"sqlite:///{tmp_path / 'csvc.sqlite'}")
        upgrade(self.engine)
        self.store = SynchronousStore(self.engine, self.clock)
        self.journal = Journal(self.store)
        self.hub = FakeAgentHub(self.store, self.journal, self.clock)
        # Notifications go to ``self.notices`` (a list of (project, envelope));
        # a test adds sinks (a webhook one) to ``self.notifier.sinks``.
        self.notices = RecordingSink()
        self.resolver = TableResolver()
        self.subscriptions = Subscriptions(self.store, Destinations(self.resolver, clock=self.clock))
        self.notifier = Notifier(self.clock, [self.notices], self.subscriptions, publisher_id="csvc.test")
        self.notifier.startService()
        self.containers = ContainerService(self.store, self.journal, self.hub, self.clock, notifier=self.notifier)
        self.hub.events = self.containers
        self.api = NativeAPI(
            TokenAuth(self.store), self.containers, self.store, self.journal, subscriptions=self.subscriptions
        )
        self.http = StubTreq(self.api.resource())
        row, _enroll = result_of(self.store.create_instance("local-1", "local", 10, shared=True))
        result_of(self.store.update_instance(row["uuid"], status="active"))
        self.hub.connected.add(row["uuid"])
        self.instance = row["uuid"]
        self.anonymous = Client(self)
        self.alice = self.client("project-a", "alice")
        self.bob = self.client("project-b", "bob")
        self.admin = self.client("project-ops", "root", is_admin=True)

    def client(self, project, user, is_admin=False):
        token = result_of(self.store.create_token(project, user, is_admin))
        return Client(self, token, project)

    def settle(self):
        """
        Let everything due now happen: timers due at this instant (such as
        the fake agent's exit reports) and every byte in flight between the
        client and the API.
        """
        for _ in range(10):
            self.clock.advance(0)
            self.http.flush()

    def disconnect_clients(self):
        """
        Every client hangs up on the requests it has open.
        """
        for pump in list(self.http._agent._pumps):
            pump.clientIO.loseConnection()
        self.settle()

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.settle()

    def row(self, ident):
        return result_of(self.store.get_container(ident))

    def all_rows(self):
        return result_of(self.store.list_containers())

    def output(self, container_uuid, *chunks):
        """
        Feed output as an agent would: ``(stream, bytes)`` pairs numbered on
        from what is persisted.
        """
        self.journal.known(container_uuid, 0)
        for stream, data in chunks:
            seq = self.journal.persisted_seq(container_uuid) + 1
            result_of(self.journal.append(container_uuid, seq, stream, data, f"cursor-{seq}"))
        self.settle()

    def exit(self, container_uuid, exit_code, last_seq=None):
        d = self.hub.report_exit(container_uuid, exit_code, last_seq)
        self.settle()
        return d


@pytest.fixture
def env(tmp_path):
    threads = set(threading.enumerate())
    environment = Environment(tmp_path)
    yield environment
    environment.engine.dispose()
    assert set(threading.enumerate()) == threads, "a test started a thread"


@pytest.fixture(autouse=True)
def no_logged_failures():
    """
    A test fails if anything logged a failure (an unexpected error, an
    unhandled Deferred error) while it ran.
    """
    failures = []

    def observe(event):
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    yield failures
    globalLogPublisher.removeObserver(observe)
    assert not failures, [str(e["log_failure"]) for e in failures]
