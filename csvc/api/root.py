"""
One listener, two APIs: the native API (``/``, ``/v1/...``, ``/ui/...``) and
the Docker Engine API (everything else, unversioned or under ``/vX.Y/``).
"""

import re

from twisted.web.resource import IResource
from zope.interface import implementer

_DOCKER_VERSION = re.compile(rb"^v([0-9]+\.[0-9]+)$")
_NATIVE = {b"", b"v1", b"ui"}


@implementer(IResource)
class APIRoot:
    isLeaf = True

    def __init__(self, native, docker):
        self._native = native
        self._docker = docker

    def render(self, request):
        first = request.postpath[0] if request.postpath else b""
        if first in _NATIVE:
            return self._native.render(request)
        match = _DOCKER_VERSION.match(first)
        if match:
            # /v1.45/containers/json: the version goes to the prepath, where
            # Klein does not route on it, and to the request for the handler.
            request.docker_api_version = match.group(1).decode("ascii")
            request.prepath.append(request.postpath.pop(0))
        return self._docker.render(request)

    def getChildWithDefault(self, name, request):
        return self

    def putChild(self, path, child):
        raise NotImplementedError()
