"""
What fuzzing the Docker API with its own document (tests/security/
test_docker_fuzz.py) found, at the unit that had it wrong.
"""

import pytest
from treq.testing import StubTreq
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

from csvc.api import docker_options
from csvc.api.docker import DockerAPI
from csvc.api.schemas import BadRequest
from csvc.relay.hijack import RAW, HijackableChannel, HijackResource
from tests.api.conftest import result_of


@pytest.mark.parametrize(
    "field, value",
    [("MemoryReservation", -159980), ("Memory", -1), ("NanoCpus", -5), ("CpuShares", -2), ("CpuPeriod", -1),
     ("MemorySwap", -2), ("CpuQuota", -1000)],
)
def test_a_negative_limit_in_an_update_is_a_400_naming_it(field, value):
    # The engine hands it to runc, whose failure was a 500.
    with pytest.raises(BadRequest, match=f"{field}: (must be -?[01] or more|0 \\(the default\\) or from [0-9]+ to "
                                         f"[0-9]+), not {value}"):
        docker_options.update_fields({field: value})


def test_unlimited_swap_and_quota_and_zero_values_are_still_taken():
    assert docker_options.update_fields({"MemorySwap": -1, "CpuQuota": -1, "Memory": 0}) == {
        "MemorySwap": -1, "CpuQuota": -1,
    }
    assert docker_options.update_fields({"MemoryReservation": 6 * 1024 * 1024}) == {
        "MemoryReservation": 6 * 1024 * 1024,
    }


class Stream(Protocol):
    def __init__(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


def hijacked(head):
    """
    The bytes a ``HijackResource`` answers a request of ``head`` with, and
    the stream's protocol.
    """
    stream = Stream()
    site = Site(HijackResource(stream, RAW, Clock()))
    site.protocol = HijackableChannel
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(head + b"Content-Length: 0\r\n\r\nstdin bytes")
    return transport.value(), stream


def test_a_hijack_asked_to_upgrade_answers_101():
    answer, stream = hijacked(b"POST /exec/x/start HTTP/1.1\r\nHost: csvc\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n")
    assert answer == (
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    assert stream.received == b"stdin bytes"


def test_a_hijack_not_asked_to_upgrade_answers_200_with_the_stream_as_body():
    # As Docker does; a 101 the client did not ask for is no HTTP answer.
    answer, stream = hijacked(b"POST /exec/x/start HTTP/1.1\r\nHost: csvc\r\n")
    assert answer == b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
    assert stream.received == b"stdin bytes"


@pytest.mark.parametrize(
    "method, path",
    [("TRACE", "/images/json"), ("PATCH", "/images/json"), ("PUT", "/images/json"), ("POST", "/images/json"),
     ("GET", "/images/create"), ("POST", "/images/csvc/busybox/json"), ("GET", "/build/prune"),
     ("DELETE", "/build/prune")],
)
def test_a_method_the_engine_api_has_no_operation_for_on_a_served_path_is_a_405(method, path):
    # It was a 501 "csvc does not serve Docker image management".
    http = StubTreq(DockerAPI(None, None, None, None, None, None, None).resource())
    response = result_of(http.request(method, "http://csvc.test" + path))
    assert response.code == 405
    assert result_of(response.json()) == {"message": f"method not allowed on {path}"}


def test_an_engine_api_method_on_an_images_path_csvc_does_not_serve_is_still_a_501():
    # DELETE /images/json removes the image "json" in the Engine API.
    http = StubTreq(DockerAPI(None, None, None, None, None, None, None).resource())
    response = result_of(http.delete("http://csvc.test/images/json"))
    assert response.code == 501
    assert result_of(response.json())["message"].startswith("csvc does not serve Docker image management")


MIB = 1024 * 1024


@pytest.mark.parametrize(
    "changes, memory, swap, words",
    [
        ({"MemorySwap": 9175346}, 512 * MIB, 0, "MemorySwap: 9175346 is lower than the memory limit"),
        ({"MemorySwap": 64 * MIB, "Memory": 128 * MIB}, 0, 0, "MemorySwap: 67108864 is lower than the memory limit"),
        ({"Memory": 256 * MIB}, 64 * MIB, 128 * MIB, "Memory: 268435456 is higher than the container's MemorySwap"),
    ],
)
def test_swap_below_the_memory_limit_is_a_400_naming_it(changes, memory, swap, words):
    # The engine hands it to runc (memory.memsw.limit_in_bytes), whose
    # failure was a 500.
    with pytest.raises(BadRequest, match=words):
        docker_options.swap_within(changes, memory, swap)


@pytest.mark.parametrize(
    "changes, memory, swap",
    [
        ({"MemorySwap": 1024 * MIB}, 512 * MIB, 0),
        ({"MemorySwap": -1}, 512 * MIB, 0),
        ({"MemorySwap": 9175346}, 0, 0),
        ({"Memory": 64 * MIB}, 512 * MIB, 1024 * MIB),
        ({"PidsLimit": 10}, 512 * MIB, 256 * MIB),
    ],
)
def test_swap_at_or_above_the_memory_limit_or_unlimited_is_taken(changes, memory, swap):
    assert docker_options.swap_within(changes, memory, swap) == changes
