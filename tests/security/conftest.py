"""
The attack suite: a member's token against a real control plane and the
real engine (the fixtures of ``tests/integration``), and the engine checked
directly afterwards.
"""

import pytest

from tests.integration.conftest import alpha, beta, control_plane, database  # noqa: F401 (fixtures)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/security/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
