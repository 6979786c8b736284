"""
The ``local`` instance provider: instances are agent processes on this
machine, against the local Docker engine.  The embedded default.

The agents are run by Twisted's ``ProcessMonitor``, which restarts one that
dies.  Each start is given a fresh enrollment token (only its hash is
stored), passed in the environment rather than on the command line.
"""

import os
import sys

from twisted.application.service import MultiService
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger
from twisted.runner.procmon import ProcessMonitor

_TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def agent_command(connect, capacity, extra=()):
    return [
        sys.executable,
        "-c",
        _TWISTD,
        "--nodaemon",
        "--pidfile=",
        "csvc-agent",
        "--connect",
        connect,
        "--capacity",
        str(capacity),
        *extra,
    ]


class LocalProvider(MultiService):
    log = Logger()

    def __init__(self, store, listener, count, capacity, reactor):
        super().__init__()
        self._store = store
        self._listener = listener
        self._count = count
        self._capacity = capacity
        self._monitor = ProcessMonitor(reactor=reactor)
        self._monitor.setServiceParent(self)

    def startService(self):
        super().startService()
        d = self._listener.listening.addCallback(self._spawn_agents)
        d.addErrback(lambda f: self.log.failure("starting the local instances failed", f))

    @inlineCallbacks
    def _spawn_agents(self, address):
        connect = f"tcp:{address.host}:{address.port}"
        existing = yield self._store.list_instances(provider="local")
        while len(existing) < self._count:
            row, _token = yield self._store.create_instance(
                f"local-{len(existing) + 1}", "local", self._capacity, shared=True
            )
            existing.append(row)
        for row in existing[: self._count]:
            token = yield self._store.set_enroll_token(row["uuid"])
            env = dict(os.environ)
            env["CSVC_ENROLL_TOKEN"] = token
            self._monitor.addProcess(
                row["name"],
                agent_command(connect, self._capacity, ("--hostname", row["name"])),
                env=env,
            )
            self.log.info("starting agent for local instance {name}", name=row["name"])
