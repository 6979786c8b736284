"""
Networks on a Docker engine: the engine's network calls (``DockerNetworks``,
a mixin of ``DockerEngine``) and the projects' default networks
(``DefaultNetworks``).
"""

import re
import threading
from contextlib import contextmanager

from docker import errors as docker_errors

from csvc.agent import docker_config, wall
from csvc.agent.docker_labels import LABEL_DEFAULT_NETWORK, LABEL_PROJECT, engine_name
from csvc.wire.commands import Conflict, EngineError, NoSuchContainer, NoSuchNetwork


class DockerNetworks:
    """
    ``DockerEngine``'s network calls (it mixes this in): run by its
    ``_call``, each create checked again by its ``_firewall``, a refusal of
    its wall made by its ``_refusal``.
    """

    def _network_call(self, fn, *args):
        def run(c, *args):
            try:
                return fn(c, *args)
            except docker_errors.NotFound as exc:
                message = str(exc.explanation or exc)
                if "no such container" in message.lower():
                    raise NoSuchContainer(message) from None
                raise NoSuchNetwork(message) from None
            except docker_errors.APIError as exc:
                # The engine's 403 for networks: removing one in use,
                # connecting a container twice.
                if exc.status_code in (403, 409):
                    raise Conflict(str(exc.explanation or exc)) from None
                raise

        return self._call(run, *args)

    def list_networks(self, prefix, names):
        def listed(c):
            found = c.api.networks(filters={"name": prefix}) if prefix else []
            found = [n for n in found if n["Name"].startswith(prefix)]
            if names:
                found += [n for n in c.api.networks(names=list(names)) if n["Name"] in names]
            return found

        return self._network_call(listed)

    def create_network(self, name, options):
        def create(c):
            created = c.api.create_network(
                name, driver="bridge", labels=options.get("Labels") or None, check_duplicate=True,
                internal=bool(options.get("Internal")), attachable=bool(options.get("Attachable")),
                options=docker_config.network_driver_options(name),
            )
            return c.api.inspect_network(created["Id"])

        d = self._network_call(create)
        if self._firewall is not None:
            d.addCallback(lambda network: self._firewall.apply().addCallback(lambda _: network))
        return d

    def inspect_network(self, name):
        return self._network_call(lambda c: c.api.inspect_network(name))

    def remove_network(self, name):
        return self._network_call(lambda c: c.api.remove_network(name))

    def connect_network(self, uuid, name, aliases):
        def connect(c):
            labels = (c.api.inspect_container(engine_name(uuid)).get("Config") or {}).get("Labels") or {}
            violations = wall.connect_violations(name, labels.get(LABEL_PROJECT, ""))
            if violations:
                return violations
            c.api.connect_container_to_network(engine_name(uuid), name, aliases=aliases or None)
            return None

        def connected(violations):
            if violations:
                raise self._refusal("network connect", uuid, violations)

        return self._network_call(connect).addCallback(connected)

    def disconnect_network(self, uuid, name, force):
        return self._network_call(
            lambda c: c.api.disconnect_container_from_network(engine_name(uuid), name, force=force)
        )


class DefaultNetworks:
    """
    The projects' default networks on this engine, made on demand and
    removed with the project's last container on them (each takes one of
    the engine's address pools).  A project's makes, creates of containers
    on it and removals take turns (a lock per project: they run on the
    pool's threads); two agents sharing the engine may still both make one,
    and then every caller keeps the oldest and the others are removed.
    """

    def __init__(self):
        self._lock = threading.Lock()
        #: project -> [its lock, how many hold or wait for it]
        self._projects = {}

    @contextmanager
    def _turn(self, project_id):
        with self._lock:
            entry = self._projects.setdefault(project_id, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if not entry[1]:
                    del self._projects[project_id]

    @contextmanager
    def held(self, client, project_id):
        """
        The engine id of the project's default network (made if missing),
        not removed before the block (the container's create) is done.
        Runs on a pool thread.
        """
        with self._turn(project_id):
            yield self._ensure(client, project_id)

    def ensure(self, client, project_id):
        with self.held(client, project_id) as network_id:
            return network_id

    def release(self, client, project_id):
        """
        Remove the project's default network if no container (running or
        not) is on it any more.  Runs on a pool thread.
        """
        with self._turn(project_id):
            for network in _named_networks(client, docker_config.default_network(project_id)):
                if client.api.containers(all=True, filters={"network": network["Id"]}):
                    continue
                try:
                    client.api.remove_network(network["Id"])
                except docker_errors.APIError:
                    pass  # in use after all (another agent's), or gone

    def _ensure(self, client, project_id):
        name = docker_config.default_network(project_id)
        found = _named_networks(client, name)
        if not found:
            try:
                client.api.create_network(
                    name, driver="bridge", check_duplicate=True,
                    labels={LABEL_PROJECT: project_id, LABEL_DEFAULT_NETWORK: "1"},
                    options=docker_config.network_driver_options(name),
                )
            except docker_errors.APIError:
                # Made meanwhile by another agent on this engine: a 409 when
                # its name was there first, a 500 ("same bridge name") when
                # both passed the name check at once.  Found below, or not.
                pass
            found = _named_networks(client, name)
        if not found:
            raise EngineError(f"the default network of project {project_id} could not be made")
        kept = min(found, key=_creation_order)
        for extra in found:
            if extra["Id"] != kept["Id"]:
                try:
                    client.api.remove_network(extra["Id"])
                except docker_errors.APIError:
                    pass  # in use or gone: every maker keeps the oldest anyway
        return kept["Id"]


def _named_networks(client, name):
    return [n for n in client.api.networks(names=[name]) if n.get("Name") == name]


_CREATED = re.compile(r"(.*?)(?:\.([0-9]+))?(Z|[+-][0-9:]+)?")


def _creation_order(network):
    """
    A network's place in the order they were made: its ``Created``
    (RFC 3339, its fraction's trailing zeros trimmed by the engine), then
    its id.
    """
    match = _CREATED.fullmatch(network.get("Created") or "")
    seconds, fraction = (match.group(1), match.group(2) or "") if match else ("", "")
    return seconds, fraction.ljust(9, "0"), network["Id"]
