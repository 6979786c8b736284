"""
csvc/api/docker/system.py: the unauthenticated /version tells clients what they
read (ApiVersion, MinAPIVersion, Version) and nothing of the host's kernel.
"""

import platform

from treq.testing import StubTreq

from csvc.api.docker import DockerAPI
from csvc.api.docker.app import API_VERSION, MIN_API_VERSION, SERVER_VERSION
from tests.api.conftest import result_of


def test_version_without_credentials_shows_no_kernel():
    http = StubTreq(DockerAPI(None, None, None, None, None, None, None).resource())
    response = result_of(http.get("http://csvc.test/version"))
    assert response.code == 200
    body = result_of(response.json())
    assert (body["ApiVersion"], body["MinAPIVersion"], body["Version"]) == (API_VERSION, MIN_API_VERSION,
                                                                             SERVER_VERSION)
    assert body["KernelVersion"] == ""
    assert platform.release() not in str(body)
