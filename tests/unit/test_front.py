"""
csvc/api/front.py: request bodies refused past their limit before any
resource (so before authentication) runs, never spooled past it; an access
log without secrets.  Driven through the real HTTPChannel over a
StringTransport.
"""

import io
import json

import pytest
from hypothesis import given, strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from csvc.api.front import REDACTED, BodyLimits, FrontSite, redact_uri


class Recorder(Resource):
    """
    Records what reaches it (method, path, body, headers) and answers 200.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append((request.method, request.path, request.content.read(), request))
        request.setHeader(b"Content-Type", b"text/plain")
        return b"ok"


def serve(limits=None):
    resource = Recorder()
    site = FrontSite(resource, reactor=Clock(), body_limits=limits or BodyLimits(body=1000, upload=5000))
    log = io.StringIO()
    site.logFile = log
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return resource, channel, transport, log


def head(method, path, *headers):
    lines = [f"{method} {path} HTTP/1.1", "Host: csvc.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(transport):
    return transport.value().split(b"\r\n", 1)[0]


def body_of(transport):
    return json.loads(transport.value().split(b"\r\n\r\n", 1)[1])


def chunked(data, size=100):
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


def test_a_body_within_the_limit_reaches_the_resource():
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("POST", "/v1/containers", "Content-Length: 1000") + b"x" * 1000)
    assert [(m, p, len(b)) for m, p, b, _ in resource.seen] == [(b"POST", b"/v1/containers", 1000)]
    assert status_of(transport) == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("path, shape", [("/v1/containers", "native"), ("/v1.45/containers/create", "docker")])
def test_a_declared_length_past_the_limit_is_413_before_the_body(path, shape):
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("POST", path, "Content-Length: 1001"))
    # Answered on the headers alone: not a byte of the body was needed.
    assert status_of(transport) == b"HTTP/1.1 413 Payload Too Large"
    assert transport.disconnecting
    body = body_of(transport)
    message = body["error"]["message"] if shape == "native" else body["message"]
    assert "1001 bytes" in message and "at most 1000" in message
    channel.dataReceived(b"x" * 1001)
    assert resource.seen == []


def test_a_refused_body_gets_no_100_continue():
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("POST", "/v1/containers", "Content-Length: 5000", "Expect: 100-continue"))
    assert status_of(transport) == b"HTTP/1.1 413 Payload Too Large"
    assert b"100 Continue" not in transport.value()


def test_a_chunked_body_is_cut_at_the_limit():
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("POST", "/containers/create", "Transfer-Encoding: chunked"))
    body = chunked(b"y" * 1500)
    channel.dataReceived(body[:-5])
    request = channel.requests[-1]
    assert status_of(transport) == b"HTTP/1.1 413 Payload Too Large"
    assert transport.disconnecting
    assert "exceeds 1000 bytes" in body_of(transport)["message"]
    # Nothing past the limit was kept anywhere.
    assert request.content.getvalue() == b""
    # The rest of the body (and its end) processes nothing.
    channel.dataReceived(body[-5:])
    assert resource.seen == []


def test_a_chunked_body_within_the_limit_is_whole():
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("POST", "/containers/create", "Transfer-Encoding: chunked") + chunked(b"z" * 1000))
    assert [b for _, _, b, _ in resource.seen] == [b"z" * 1000]


@pytest.mark.parametrize("path", ["/containers/abc/archive", "/v1.45/containers/abc/archive"])
def test_archive_uploads_have_their_own_larger_limit(path):
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("PUT", path + "?path=/tmp", "Content-Length: 5000") + b"a" * 5000)
    assert [len(b) for _, _, b, _ in resource.seen] == [5000]
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("PUT", path + "?path=/tmp", "Content-Length: 5001"))
    assert status_of(transport) == b"HTTP/1.1 413 Payload Too Large"
    assert "at most 5000" in body_of(transport)["message"]


@pytest.mark.parametrize("method, path", [("POST", "/containers/abc/archive"), ("PUT", "/containers/abc/archivex"),
                                          ("PUT", "/v1/containers/abc/archive/x")])
def test_only_the_archive_put_has_the_upload_limit(method, path):
    resource, channel, transport, _ = serve()
    channel.dataReceived(head(method, path, "Content-Length: 1001"))
    assert status_of(transport) == b"HTTP/1.1 413 Payload Too Large"


def test_requests_without_a_body_pass_and_the_connection_is_reused():
    resource, channel, transport, _ = serve()
    channel.dataReceived(head("POST", "/containers/abc/attach?stream=1") + head("GET", "/_ping"))
    assert [p for _, p, _, _ in resource.seen] == [b"/containers/abc/attach", b"/_ping"]
    assert not transport.disconnecting


ATTACH_TOKEN = "Zq3vN9xYy7aT0pQ1wErT5uI8oP2aS4dF"


def test_the_access_log_has_no_attach_token_and_no_headers():
    resource, channel, transport, log = serve()
    channel.dataReceived(head(
        "GET", f"/v1/attach/{ATTACH_TOKEN}?token={ATTACH_TOKEN}&stdin=1",
        "X-Auth-Token: tok-secret-1", "X-Registry-Auth: cmVnaXN0cnktc2VjcmV0",
        f"Referer: http://csvc.test/ui/?access_token={ATTACH_TOKEN}",
    ))
    line = log.getvalue()
    assert resource.seen and line.count("\n") == 1
    assert ATTACH_TOKEN not in line
    assert "tok-secret-1" not in line and "cmVnaXN0cnktc2VjcmV0" not in line
    assert f"/v1/attach/{REDACTED}?token={REDACTED}&stdin=1" in line
    assert f"/ui/?access_token={REDACTED}" in line


def test_the_access_log_keeps_what_is_not_secret():
    resource, channel, transport, log = serve()
    channel.dataReceived(head("GET", "/v1.45/containers/json?all=1&filters=%7B%7D"))
    assert '"GET /v1.45/containers/json?all=1&filters=%7B%7D HTTP/1.1" 200' in log.getvalue()


@pytest.mark.parametrize("uri, expected", [
    ("/v1/attach/abc", f"/v1/attach/{REDACTED}"),
    ("/v1/attach/abc/", f"/v1/attach/{REDACTED}/"),
    ("https://h/v1/attach/abc?x=1", f"https://h/v1/attach/{REDACTED}?x=1"),
    ("/x?password=p&user=u", f"/x?password={REDACTED}&user=u"),
    ("/x?X-Auth-Token=t", f"/x?X-Auth-Token={REDACTED}"),
    ("/x?api_key=k&sig=s", f"/x?api_key={REDACTED}&sig={REDACTED}"),
    ("/v1/containers?all_projects=true", "/v1/containers?all_projects=true"),
    ("/plain", "/plain"),
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="&#=?/%+<>"),
               min_size=8))
def test_no_secret_value_survives_redaction(secret):
    for uri in (f"/v1/attach/{secret}", f"/v1/attach/{secret}?x=1", f"/y?token={secret}",
                f"/y?a=1&refresh_token={secret}#f"):
        assert secret not in redact_uri(uri)
