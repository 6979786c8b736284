"""
csvc/api/docker/views.py: what `docker ps -a` shows of a container by its csvc
status (State and the Status text the CLI prints).
"""

from datetime import datetime

import pytest

from csvc.api.docker.views import container_summary

CREATED = datetime(2026, 11, 26, 9, 0, 0)
LATER = datetime(2026, 11, 26, 9, 5, 0)


def row(status, **values):
    base = dict(
        uuid="u", engine_id="e" * 64, name="n", image="csvc/busybox:latest", command=["true"], entrypoint=None,
        created_at=CREATED, started_at=None, finished_at=None, exit_code=None, labels={}, status=status,
    )
    base.update(values)
    return base


@pytest.mark.parametrize(
    "status, values, state, text",
    [
        ("created", {}, "created", "Created"),
        ("running", {"started_at": CREATED}, "running", "Up 5 minutes"),
        ("exited", {"finished_at": CREATED, "exit_code": 3}, "exited", "Exited (3) 5 minutes ago"),
        ("deleting", {}, "removing", "Removal In Progress"),
    ],
)
def test_ps_state_and_status(status, values, state, text):
    now = (LATER - datetime(1970, 1, 1)).total_seconds()  # rows' times are naive UTC
    summary = container_summary(row(status, **values), now)
    assert (summary["State"], summary["Status"]) == (state, text)
