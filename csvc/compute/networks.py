"""
A project's networks on the engines: bridge networks named
``csvc-<project>-<name>`` on the engine (``engine_network``), shown as
``<name>``; besides them a project sees the engine's own ``bridge`` and
``none`` (with only its own containers in them).  One project never reaches
another's networks: every name or id a client gives is resolved among the
project's before anything reaches an engine.

The project's ``bridge`` is its own default network
(``docker_config.default_network``, which the agent makes on demand for the
project's first container on the engine's default network), never the
engine's ``bridge`` that all projects would share: the engine's ``bridge``
is shown only while the project has no default network of its own there.

A network is local to one engine, as Docker's bridge networks are: it lives
on the first active instance the project may use (as its volumes), and a
container created on it, or connected to it, must be on that instance
(containers created on it are placed there).
"""

from twisted.internet.defer import DeferredLock, inlineCallbacks
from twisted.logger import Logger

from csvc import policy
from csvc.wire import commands
from csvc.wire.naming import default_network, engine_network, unscoped
from csvc.compute.volumes import LABEL_PROJECT, project_instance
from csvc.store.quotas import QuotaExceeded, over

#: The engine's own networks a project sees (and may not create or remove).
BUILTIN = ("bridge", "none")
#: Names Docker reserves for its own networks.
RESERVED = frozenset(BUILTIN) | {"host", "default"}


class ProjectNetworks:
    log = Logger()

    def __init__(self, store, hub):
        self._store = store
        self._hub = hub
        #: project -> the lock its creates take turns on (while any waits)
        self._creating = {}

    def instance(self, project_id):
        return project_instance(self._store, self._hub, project_id, "networks")

    @inlineCallbacks
    def _listed(self, project_id):
        instance = yield self.instance(project_id)
        own_default = default_network(project_id)
        result = yield self._hub.call(
            instance, commands.ListNetworks, prefix=engine_network(project_id, ""),
            names=list(BUILTIN) + [own_default],
        )
        networks = result["networks"]
        if any(n["Name"] == own_default for n in networks):
            # The project's bridge is its own: the engine's is none of its.
            networks = [n for n in networks if n["Name"] != "bridge"]
        return instance, networks

    def short_name(self, project_id, name):
        """
        The name a project sees for the engine's network ``name``.
        """
        if name == default_network(project_id):
            return "bridge"
        return unscoped(project_id, name)

    def shown(self, project_id, network, names):
        """
        The engine's ``network`` as the project sees it: its short name, and
        among its containers only the project's (``names``: engine id ->
        the container's name in the project).
        """
        shown = dict(network, Name=self.short_name(project_id, network.get("Name", "")))
        shown["Containers"] = {
            engine_id: dict(endpoint, Name=names[engine_id])
            for engine_id, endpoint in (network.get("Containers") or {}).items() if engine_id in names
        }
        return shown

    @inlineCallbacks
    def list(self, project_id, names):
        _instance, networks = yield self._listed(project_id)
        return [self.shown(project_id, n, names) for n in networks]

    @inlineCallbacks
    def find(self, project_id, ident):
        """
        ``(instance, engine's name, short name)`` of the project's network
        (or a built-in one) that ``ident`` names: its id, its name, or a
        prefix of one id only, as Docker resolves them.
        """
        instance, networks = yield self._listed(project_id)
        short = {n["Name"]: self.short_name(project_id, n["Name"]) for n in networks}
        found = [n for n in networks if n["Id"] == ident] or [n for n in networks if short[n["Name"]] == ident]
        if not found and ident:
            found = [n for n in networks if n["Id"].startswith(ident)]
            if len(found) > 1:
                raise commands.NoSuchNetwork(f"network {ident} is ambiguous ({len(found)} ids begin with it)")
        if not found:
            raise commands.NoSuchNetwork(f"network {ident} not found")
        return instance, found[0]["Name"], short[found[0]["Name"]]

    @inlineCallbacks
    def inspect(self, project_id, ident, names):
        instance, name, _short = yield self.find(project_id, ident)
        result = yield self._hub.call(instance, commands.InspectNetwork, name=name)
        return self.shown(project_id, result["network"], names)

    @inlineCallbacks
    def count(self, project_id):
        """
        How many networks the project has (the engine's own not counted).
        """
        _instance, networks = yield self._listed(project_id)
        return _count(project_id, networks)

    @inlineCallbacks
    def create(self, project_id, name, options):
        """
        Create the project's network ``name`` within its ``networks`` quota
        (the project's creates take turns, so that two cannot both take
        the last one); fires with its inspect.
        """
        lock = self._creating.setdefault(project_id, DeferredLock())
        try:
            network = yield lock.run(self._create, project_id, name, options)
        finally:
            if not lock.locked and not lock.waiting:
                self._creating.pop(project_id, None)
        return network

    @inlineCallbacks
    def _create(self, project_id, name, options):
        limits = yield self._store.get_quota(project_id)
        instance, networks = yield self._listed(project_id)
        in_use = _count(project_id, networks)
        if over(limits["networks"], in_use, 1):
            raise QuotaExceeded("networks", limits["networks"], in_use)
        options = dict(options, Labels=dict(options.get("Labels") or {}, **{LABEL_PROJECT: project_id}))
        result = yield self._hub.call(
            instance, commands.CreateNetwork, name=engine_network(project_id, name), options=options
        )
        return result["network"]

    @inlineCallbacks
    def remove(self, project_id, ident):
        """
        Fires with the short name of the network removed.
        """
        instance, name, short = yield self.find(project_id, ident)
        if short in RESERVED:
            raise BuiltinNetwork(f"{short} is a pre-defined network and cannot be removed")
        yield self._hub.call(instance, commands.RemoveNetwork, name=name)
        return short

    @inlineCallbacks
    def _for_container(self, project_id, ident, row):
        instance, name, short = yield self.find(project_id, ident)
        if short in RESERVED:
            raise BuiltinNetwork(f"csvc connects and disconnects containers on its project's networks only, "
                                 f"not on {short}")
        if row["instance_uuid"] != instance:
            raise WrongInstance(f"network {short} is on another instance than container {row['name']}: a "
                                "network and its containers share one instance")
        return instance, name, short

    @inlineCallbacks
    def connect(self, project_id, ident, row, aliases):
        """
        Connect the project's container ``row`` to a network of the
        project's, known there by its name and ``aliases``.  Fires with
        the network's short name.
        """
        instance, name, short = yield self._for_container(project_id, ident, row)
        names = [row["name"]] + [a for a in aliases if a != row["name"]]
        try:
            yield self._hub.call(instance, commands.ConnectNetwork, uuid=row["uuid"], name=name, aliases=names)
        except commands.Refused as exc:
            # The agent's wall: a container joins its own project's networks only.
            self.log.warn("the agent of instance {instance} refused the network connect of container {uuid}: {why}",
                          instance=instance, uuid=row["uuid"], why=str(exc))
            raise policy.Forbidden(f"the instance's agent refused the network connect: {exc}") from None
        return short

    @inlineCallbacks
    def disconnect(self, project_id, ident, row, force):
        """
        Fires with the network's short name.
        """
        instance, name, short = yield self._for_container(project_id, ident, row)
        yield self._hub.call(instance, commands.DisconnectNetwork, uuid=row["uuid"], name=name, force=bool(force))
        return short


def _count(project_id, networks):
    return sum(1 for n in networks if n["Name"] not in BUILTIN and n["Name"] != default_network(project_id))


class BuiltinNetwork(Exception):
    """
    An operation on one of the engine's own networks a project may not make.
    """


class WrongInstance(Exception):
    """
    A container and a network on different instances.
    """
