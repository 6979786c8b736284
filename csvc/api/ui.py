"""
The browser terminal, ``/ui``: a page per container that attaches to it with
xterm.js, and the static files it loads.

The page holds no secrets and needs no authentication: the browser keeps the
token in the URL fragment (never sent to the server) and asks the API for a
one-time attach URL itself.
"""

import os

from klein import Klein
from twisted.web.resource import NoResource
from twisted.web.static import File
from werkzeug.exceptions import HTTPException

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

#: Scripts and styles from this origin only; fetch and WebSocket to this
#: origin only (CSP3 lets 'self' match ws: and wss: on the same host).
#: xterm.js sizes and colours its cells by writing ``<style>`` elements,
#: and takes no nonce: styles must allow inline; scripts do not.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; "
    "img-src 'self' data:; "
    "font-src 'self'; "
    "base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'none'"
).encode("ascii")


def _protect(request):
    request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Referrer-Policy", b"no-referrer")


class StaticFiles(File):
    """
    The files of one folder, and nothing else: no directory listings (the
    traversal checks are ``File``'s own: ``..`` and ``/`` in a segment are
    not found).
    """

    contentTypes = dict(
        File.contentTypes,
        **{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"},
    )

    def directoryListing(self):
        return self.childNotFound

    def render(self, request):
        _protect(request)
        if self.isdir():
            return self.childNotFound.render(request)
        return super().render(request)


class TerminalUI:
    """
    The routes under ``/ui``.
    """

    _app = Klein()

    def __init__(self, static=STATIC):
        # Read once, when the service is built, not on the reactor per request.
        with open(os.path.join(static, "terminal.html"), "rb") as page:
            self._page = page.read()
        self._static = StaticFiles(static, defaultType="text/plain; charset=utf-8")
        self._static.childNotFound = NoResource("no such file")

    def resource(self):
        return self._app.resource()

    @_app.handle_errors(HTTPException)
    def routing_error(self, request, failure):
        code = failure.value.code or 500
        if code in (301, 302, 307, 308):
            code = 404
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        _protect(request)
        return b"no such page\n" if code == 404 else f"{code}\n".encode("ascii")

    @_app.route("/containers/<ident>", methods=["GET"])
    def terminal(self, request, ident):
        # The page is the same for every container: its script reads the id
        # from the path, so nothing from the request is written into it.
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        _protect(request)
        return self._page

    @_app.route("/static/", branch=True, methods=["GET"])
    def static(self, request):
        return self._static
