"""
The ``local`` instance provider: instances are agent processes on this
machine, against the local Docker engine.  The embedded default.

The agents are run by Twisted's ``ProcessMonitor``, which restarts one that
dies.  Each start is given a fresh enrollment token (only its hash is
stored), passed in the environment rather than on the command line.
"""

import os
import secrets
import sys

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.runner.procmon import ProcessMonitor

from csvc.notify.notifier import NullNotifier
from csvc.agents import tls as agenttls

_TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def machine_size():
    """
    This machine's memory (MiB) and the cores this process may use: the
    default size of a local instance.  Reads the system once; call it at
    start, not per request.
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return memory, float(cpus)


def agent_command(connect, capacity, extra=()):
    """
    The command that runs a local agent.  ``-P``: the agent imports csvc and
    its plugins as installed, never from the directory the control plane
    was started in (with ``-c``, Python would put that directory first on
    ``sys.path``, and a ``csvc`` or ``twisted`` directory there would be
    the agent's code).
    """
    return [
        sys.executable,
        "-P",
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
    """
    ``count`` shared instances at start (the embedded default's); more, one
    per ``create_instance``, for a project (an ``IInstanceProvider``).  A dead
    agent is restarted after ``restart_delay`` seconds.

    At start the agents are started ``start_batch`` at a time, each batch
    once the previous one has registered with ``hub`` (or ``start_wait``
    seconds have passed): a hundred Python processes started at once on a
    small machine take minutes to register, and starve the service meanwhile.
    """

    log = Logger()
    name = "local"
    def __init__(self, store, agents_address, count, capacity, reactor, tls_dir=None, restart_delay=1.0, memory=None,
                 cpus=None, hub=None, start_batch=10, start_wait=60.0, netns=None, notifier=None,
                 reserved_ports=()):
        """
        ``agents_address``: a Deferred that fires with the address the agent
        port listens on (``csvc.server.Listener``'s ``listening``).
        """
        super().__init__()
        #: ``compute.instance.create`` / ``.delete`` go here (``csvc.notify``)
        self.notifier = notifier if notifier is not None else NullNotifier()
        #: ``csvc.providers.netns.NetworkNamespaces``: each agent in its own
        #: network namespace, dialing the gateway; None: on this namespace
        self._netns = netns
        self._reactor = reactor
        self._hub = hub
        self.start_batch = max(1, start_batch)
        self.start_wait = start_wait
        #: containers per instance
        self.capacity = capacity
        #: each instance's memory (MiB) and cores: the settings, else this machine's
        if memory is None or cpus is None:
            machine_memory, machine_cpus = machine_size()
            memory = machine_memory if memory is None else memory
            cpus = machine_cpus if cpus is None else cpus
        self.memory = memory
        self.cpus = float(cpus)
        #: the agents' connect string, once the agent port listens
        self._connect = None
        self._connecting = []
        #: A csvc-manage tls directory when the agent port speaks TLS.
        self._tls_dir = tls_dir
        #: host ports no container may publish (the control plane's own)
        self._reserved_ports = tuple(p for p in reserved_ports if p)
        self._store = store
        self._agents_address = agents_address
        self._count = count
        self._capacity = capacity
        self._monitor = ProcessMonitor(reactor=reactor)
        # Every death waits ``restart_delay`` (procmon restarts one that ran
        # past its threshold at once, and backs off on quick ones).
        self._monitor.threshold = float("inf")
        self._monitor.minRestartDelay = self._monitor.maxRestartDelay = restart_delay
        self._monitor.setServiceParent(self)

    def startService(self):
        super().startService()
        d = self._agents_address.addCallback(self._spawn_agents)
        d.addErrback(lambda f: self.log.failure("starting the local instances failed", f))

    @inlineCallbacks
    def _spawn_agents(self, address):
        # Agents in their own namespaces reach the service at the gateway.
        host = str(self._netns.gateway) if self._netns is not None else address.host
        if self._tls_dir:
            connect = agenttls.agent_endpoint(host, address.port, self._tls_dir)
        else:
            connect = f"tcp:{host}:{address.port}"
        rows = yield self._store.list_instances(provider="local")
        # A revoked instance stays revoked: another takes its place.
        existing = [row for row in rows if row["status"] != "revoked" and row.get("project_id") is None]
        # Instances created for projects run again too: their containers do.
        owned = [row for row in rows if row["status"] != "revoked" and row.get("project_id") is not None]
        while len(existing) < self._count:
            row, _token = yield self._store.create_instance(
                f"local-{len(rows) + 1}", "local", self._capacity, shared=True, memory=self.memory, cpus=self.cpus
            )
            rows.append(row)
            existing.append(row)
            self.notifier.instance_created(row)
        # Instances asked for meanwhile need not wait for all of these.
        self._connect = connect
        waiting, self._connecting = self._connecting, []
        for d in waiting:
            d.callback(connect)
        starting = existing[: self._count] + owned
        for first in range(0, len(starting), self.start_batch):
            batch = starting[first:first + self.start_batch]
            registered = []
            for row in batch:
                # Sized by the settings of this start (they may have changed).
                yield self._store.update_instance(row["uuid"], memory=self.memory, cpus=self.cpus)
                token = yield self._store.set_enroll_token(row["uuid"])
                yield self._join_network(row)
                self._start_agent(connect, row, token)
                if self._hub is not None:
                    registered.append(self._hub.when_registered(row["uuid"]).addTimeout(self.start_wait,
                                                                                         self._reactor))
            if registered and first + self.start_batch < len(starting):
                results = yield DeferredList(registered, consumeErrors=True)
                late = [row["name"] for row, (ok, _) in zip(batch, results) if not ok]
                if late:
                    self.log.warn("local instances {names} did not register within {wait:g} s; starting the next ones",
                                  names=", ".join(late), wait=self.start_wait)

    def _join_network(self, row):
        if self._netns is None:
            return succeed(None)
        return self._netns.join(row["name"])

    def _start_agent(self, connect, row, token):
        env = dict(os.environ)
        env["CSVC_ENROLL_TOKEN"] = token
        extra = ()
        if self._reserved_ports:
            extra += ("--reserved-ports", ",".join(str(p) for p in self._reserved_ports))
        extra += ("--hostname", row["name"])  # (last: how an agent's process is found by name)
        command = agent_command(connect, self.capacity, extra)
        if self._netns is not None:
            command = self._netns.wrap(row["name"], command)
        self._monitor.addProcess(row["name"], command, env=env)
        self.log.info("starting agent for local instance {name}", name=row["name"])

    def _connect_string(self):
        if self._connect is not None:
            return succeed(self._connect)
        d = Deferred()
        self._connecting.append(d)
        return d

    @inlineCallbacks
    def create_instance(self, project_id):
        """
        A new local instance for ``project_id``, its agent started; fires
        with its row (``pending`` until the agent registers).
        """
        connect = yield self._connect_string()
        row, token = yield self._store.create_instance(
            f"local-{secrets.token_hex(4)}", "local", self.capacity, shared=False, project_id=project_id,
            memory=self.memory, cpus=self.cpus,
        )
        yield self._join_network(row)
        self._start_agent(connect, row, token)
        self.notifier.instance_created(row, project_id)
        return row

    def size(self):
        """
        Fires with ``(memory, cpus)`` of the instances this provider makes.
        """
        return succeed((self.memory, self.cpus))

    def remove_instance(self, row):
        """
        Stop the instance's agent (for good: it is not restarted).
        """
        if row["name"] in self._monitor.processes:
            self._monitor.removeProcess(row["name"])
            self.log.info("stopped the agent of local instance {name}", name=row["name"])
        if self._netns is not None:
            # Its namespace outlives the name until the agent has exited.
            self._netns.leave(row["name"]).addErrback(
                lambda f: self.log.failure("removing the namespace of {name}", f, name=row["name"]))
        self.notifier.instance_deleted(row, row.get("project_id"))
        return succeed(None)
