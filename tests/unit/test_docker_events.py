"""
Docker's events from csvc's notifications: the mapping, the filters, and a
stream that holds at most ``limit`` events for a backed-up client.
"""

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from csvc.api.docker_events import DockerEvents, EventStream, docker_event, matches, parse_filters
from csvc.api.schemas import BadRequest
from csvc.notify import events as notices

ID = "e" * 64


def envelope(event_type, **payload):
    base = {"engine_id": ID, "name": "web", "image": "busybox:latest", "exit_code": None}
    return {"event_type": event_type, "payload": dict(base, **payload)}


def test_notifications_become_dockers_container_events():
    die = docker_event(envelope(notices.CONTAINER_EXIT, exit_code=3), 1_700_000_000.5)
    assert die["Action"] == die["status"] == "die" and die["id"] == ID and die["Type"] == "container"
    assert die["Actor"]["Attributes"] == {"image": "busybox:latest", "name": "web", "exitCode": "3"}
    assert (die["time"], die["timeNano"]) == (1_700_000_000, 1_700_000_000_500_000_000)
    kill = docker_event(envelope(notices.CONTAINER_STOP, action="kill", signal="SIGKILL"), 0)
    assert kill["Action"] == "kill" and kill["Actor"]["Attributes"]["signal"] == "SIGKILL"
    assert docker_event(envelope(notices.CONTAINER_STOP, action="stop"), 0)["Action"] == "stop"
    assert docker_event(envelope(notices.CONTAINER_CREATE_START), 0) is None
    assert docker_event(envelope(notices.CONTAINER_START, engine_id=None), 0) is None


def test_filters():
    start = docker_event(envelope(notices.CONTAINER_START), 0)
    assert matches(start, parse_filters('{"type": {"container": true}, "event": ["start", "die"]}'))
    assert matches(start, parse_filters('{"container": ["eeeeeeeeeeee"]}'))
    assert matches(start, parse_filters('{"container": ["/web"], "image": ["busybox"]}'))
    assert not matches(start, parse_filters('{"event": ["die"]}'))
    assert not matches(start, parse_filters('{"type": ["network"]}'))
    for text, words in (("{", "is not JSON"), ("[]", "must be a JSON object"),
                        ('{"label": ["a"]}', "invalid filter 'label'"), ('{"event": "start"}', "list of strings")):
        with pytest.raises(BadRequest) as bad:
            parse_filters(text)
        assert words in str(bad.value)


class FakeRequest:
    def __init__(self):
        self.written = []
        self.producer = None
        self.channel = object()
        self.finished = Deferred()

    def notifyFinish(self):
        return self.finished

    def write(self, data):
        self.written.append(data)

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None


def test_only_the_projects_streams_get_its_events():
    sink = DockerEvents(Clock())
    ours, theirs = FakeRequest(), FakeRequest()
    sink.open(ours, "alpha", {})
    sink.open(theirs, "beta", {})
    sink.deliver(envelope(notices.CONTAINER_START), "alpha")
    assert len(ours.written) == 1 and theirs.written == []
    ours.finished.errback(ConnectionError("gone"))
    assert len(sink) == 1 and ours.producer is None


def test_a_backed_up_client_gets_held_events_then_its_stream_ends_past_the_limit():
    request, ended = FakeRequest(), []
    stream = EventStream(request, "alpha", {}, ended.append)
    stream.limit = 2
    event = docker_event(envelope(notices.CONTAINER_START), 0)
    request.producer.pauseProducing()
    stream.offer(event)
    stream.offer(event)
    assert request.written == []
    request.producer.resumeProducing()
    assert len(request.written) == 2
    request.producer.pauseProducing()
    for _ in range(3):
        stream.offer(event)
    assert ended == [stream] and stream.done.called and request.producer is None
