"""
Where a container goes: the instance named in the request, else the first
active instance in creation order with room among those the project may use
(its own and the shared ones), else a new instance from the provider, created
for the project.

Concurrent creates that find no room share the instances already on their way
instead of each asking for one: every instance being created has ``capacity``
slots and the provider's memory and cpu, and a create that finds no room
claims a slot (with its memory and cpu) on one of them before it asks the
provider for another.  So N creates that overflow at once cost
``ceil(N / capacity)`` provider calls when memory and cpu do not run out
first.  A create whose claimed instance registers then places itself the
ordinary way (fill-first), and goes round again should someone else have
taken the room meanwhile.

A container that asks for more memory or cpu than the provider's instances
have is refused at once (``ContainerTooLarge``, a 400): no instance the
provider could make would ever hold it.
"""

from twisted.internet.defer import Deferred, TimeoutError, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from csvc.agents.hub import InstanceUnavailable
from csvc.store import capacity as room
from csvc.store.db import NoRoom


class InstanceNotReady(InstanceUnavailable):
    """
    An instance created for a container did not come up in time (503).
    """


class _Growing:
    """
    One instance on its way from the provider, and the creates waiting for it.
    """

    def __init__(self, size):
        #: ``{"containers", "memory", "cpus"}`` of the instance to be
        self.size = size
        self.claimed = room.empty_usage()
        self.row = None
        self._waiters = []

    def has_room(self, want):
        return room.shortfall(self.size, self.claimed, want) is None

    def claim(self, want):
        for resource in ("containers", "memory", "cpus"):
            self.claimed[resource] += want[resource]
        waiter = Deferred()
        self._waiters.append(waiter)
        return waiter

    def settle(self, result):
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Exception):
                waiter.errback(result)
            else:
                waiter.callback(result)


class Placement:
    """
    Places container rows; asks ``provider`` (an ``IInstanceProvider``, or
    None for a fixed set of instances) for instances when none has room.
    """

    log = Logger()

    #: How many times a create may find its new instance's room taken.
    rounds = 4

    def __init__(self, store, hub, provider, clock, wait=60.0):
        self._store = store
        self._hub = hub
        self._provider = provider
        self._clock = clock
        self.wait = wait
        #: project -> [_Growing]
        self._growing = {}
        #: how many instances were asked of the provider
        self.provider_calls = 0

    def pending(self):
        """
        The uuids of the instances being created for a create that waits.
        """
        return {g.row["uuid"] for gs in self._growing.values() for g in gs if g.row is not None}

    @inlineCallbacks
    def place(self, values, instance=None):
        """
        Insert the container row ``values`` on an instance; fires with the
        row (``instance_uuid`` set).  Fails with ``NoRoom``,
        ``InstanceNotReady``, ``NameInUse`` or ``QuotaExceeded``.
        """
        if instance is not None or self._provider is None:
            return (yield self._store.place_container(values, instance))
        project = values["project_id"]
        want = room.wanted(values)
        for _ in range(self.rounds):
            try:
                return (yield self._store.place_container(values))
            except NoRoom:
                pass
            try:
                memory, cpus = yield self._provider.size()
            except Exception as exc:
                raise InstanceNotReady(f"the provider could not tell the size of its instances: {exc}") from None
            size = {"containers": self._provider.capacity, "memory": memory, "cpus": cpus}
            too_large = room.never_fits([size], want, f"an instance of provider {self._provider.name}")
            if too_large is not None:
                raise too_large
            yield self._room_for(project, size, want)
        raise NoRoom("the instances created for this container were filled by others; try again")

    def _room_for(self, project, size, want):
        """
        Fires once an instance with room claimed for the caller is active.
        """
        growing = self._growing.setdefault(project, [])
        for candidate in growing:
            if candidate.has_room(want):
                return candidate.claim(want)
        candidate = _Growing(size)
        growing.append(candidate)
        waiter = candidate.claim(want)
        self.provider_calls += 1
        d = self._provider.create_instance(project)
        d.addCallback(self._await_agent, candidate)
        d.addBoth(self._grown, project, candidate)
        return waiter

    def _await_agent(self, row, candidate):
        candidate.row = row
        self.log.info("instance {name} created for project {project}", name=row["name"], project=row["project_id"])
        d = self._hub.when_registered(row["uuid"])
        d.addTimeout(self.wait, self._clock)

        def late(failure):
            failure.trap(TimeoutError)
            raise InstanceNotReady(
                f"instance {row['name']} created for this container did not register within {self.wait:g} s"
            )

        return d.addErrback(late)

    def _grown(self, result, project, candidate):
        growing = self._growing.get(project, [])
        if candidate in growing:
            growing.remove(candidate)
        if not growing:
            self._growing.pop(project, None)
        if isinstance(result, Failure):
            # Every create waiting for this instance fails with it.
            self.log.warn("an instance for project {project} did not come: {why}", project=project,
                          why=result.getErrorMessage())
            error = result.value
            if not isinstance(error, (InstanceUnavailable, NoRoom)):
                error = InstanceNotReady(f"creating an instance for this container failed: {error}")
            candidate.settle(error)
            return None
        candidate.settle(None)
        return None
