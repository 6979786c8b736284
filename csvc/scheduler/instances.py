"""
The instance map's life cycle beyond placement: hosts an operator registers,
instances drained and removed through their provider.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger



class InstanceConflict(Exception):
    """
    The instance still holds containers, or its name is taken (409).
    """


class NoSuchInstance(Exception):
    """
    No instance of that name or uuid (or it was deleted): a 404.
    """


class InstanceMap:
    """
    ``providers``: provider name -> ``IInstanceProvider``; an instance of a
    provider not listed (an operator's ``static`` host) is removed from the
    map only (its agent is dropped and its token dies).
    """

    log = Logger()

    def __init__(self, store, hub, containers, providers):
        self._store = store
        self._hub = hub
        self._containers = containers
        self._providers = dict(providers)

    @inlineCallbacks
    def get(self, ident):
        row = yield self._store.get_instance(ident)
        if row is None or row["status"] == "deleted":
            raise NoSuchInstance(f"instance {ident} not found")
        return row

    def register(self, name, capacity, shared=False, project_id=None):
        """
        An existing host joins: fires with ``(row, enroll_token)``; its agent
        enrolls with the token.
        """
        return self._store.register_instance(name, capacity, shared, project_id)

    @inlineCallbacks
    def delete(self, ident, force=False):
        """
        Drain the instance (no new placements) and remove it.  Refused
        (``InstanceConflict``) while it holds containers, unless ``force``:
        then they are deleted first.
        """
        row = yield self.get(ident)
        placed = yield self._store.list_containers(instance_uuid=row["uuid"])
        if placed and not force:
            raise InstanceConflict(
                f"instance {row['name']} holds {len(placed)} container(s): delete them first, or use force=true"
            )
        yield self._store.update_instance(row["uuid"], status="draining")
        for container in (yield self._store.list_containers(instance_uuid=row["uuid"])):
            yield self._containers.delete(container, force=True, instance_going=True)
        yield self.remove(row)

    @inlineCallbacks
    def drain_if_empty(self, row):
        """
        Stop placements on the instance; True when it is empty now (and
        stays so: nothing is placed on a draining instance), else it is
        made active again and False.
        """
        yield self._store.update_instance(row["uuid"], status="draining")
        placed = yield self._store.list_containers(instance_uuid=row["uuid"])
        if placed:
            yield self._store.update_instance(row["uuid"], status=row["status"])
            return False
        return True

    @inlineCallbacks
    def remove(self, row):
        """
        Remove an (empty, draining) instance through its provider; its row
        stays, status ``deleted``.
        """
        provider = self._providers.get(row["provider"])
        self._hub.drop(row["uuid"], "the instance is being removed")
        if provider is not None:
            yield provider.remove_instance(row)
        yield self._store.mark_instance_deleted(row["uuid"])
        self.log.info("instance {name} removed", name=row["name"])
