"""
The Docker Engine API, as a superset: the docker CLI and the docker SDK,
pointed at csvc with the tenant's headers, get csvc's containers.

Served on the API listener at Docker's paths, unversioned and under
``/vX.Y/`` (1.24 to 1.45).  Errors are ``{"message": ...}`` in Docker's
wording, which the clients act on (``No such image`` makes the CLI pull).

One Klein app (``app.app``) carries every route; each module holds the
routes of one subject as a mixin, and ``DockerAPI`` composes them:
``system`` (ping, version, info, events), ``containers``, ``lifecycle``
(start, stop... wait), ``transfers`` (archive, export, changes, stats),
``execs`` (exec and attach), ``images``, ``networks``, ``volumes``; with
``views`` (containers as Docker shows them) and ``filters`` (Docker's
filters) beside them.
"""

from csvc.api.docker.app import classify
from csvc.api.docker.containers import ContainerRoutes
from csvc.api.docker.execs import ExecRoutes
from csvc.api.docker.images import ImageRoutes
from csvc.api.docker.lifecycle import LifecycleRoutes
from csvc.api.docker.networks import NetworkRoutes
from csvc.api.docker.system import SystemRoutes
from csvc.api.docker.transfers import TransferRoutes
from csvc.api.docker.volumes import VolumeRoutes
from csvc.compute.images import ProjectImages
from csvc.compute.networks import ProjectNetworks
from csvc.compute.registries import RegistryPolicy
from csvc.compute.volumes import ProjectVolumes
from csvc.relay.dockerexec import DockerExecs

__all__ = ["DockerAPI", "classify"]


class DockerAPI(SystemRoutes, ContainerRoutes, LifecycleRoutes, TransferRoutes, ExecRoutes, ImageRoutes,
                NetworkRoutes, VolumeRoutes):
    """
    The Docker Engine API: ``resource()`` is its ``IResource``.
    """

    def __init__(self, auth, containers, store, journal, hub, relay, clock, volumes=None, events=None,
                 networks=None, registries=None, images=None):
        self._auth = auth
        self._containers = containers
        self._store = store
        self._journal = journal
        self._hub = hub
        self._relay = relay
        self._clock = clock
        self._execs = DockerExecs()
        self._volumes = volumes if volumes is not None else ProjectVolumes(store, hub)
        self._networks = networks if networks is not None else ProjectNetworks(store, hub)
        #: the open event streams, a notification sink (None: no /events)
        self._events = events
        #: which registries pulls may reach (``csvc.compute.registries``)
        self._registries = registries if registries is not None else RegistryPolicy(None, clock)
        #: which images a project sees and pulls where (``csvc.compute.images``)
        self._project_images = images if images is not None else ProjectImages(store, hub)
