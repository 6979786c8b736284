"""
Images belong to projects.  A project sees, inspects and runs the images it
pulled through csvc (``POST /images/create``), on the instances it may use
(its own and the shared ones), and the public images; another project's
image is "No such image", by name as by id or id prefix.  Ownership is by
image id: a project that pulled an image by one name may use it by any
other name or by its id, on any instance it may use (the same id is the same
content).

Public images are the operator's (``PublicImages``): by default, the images
no project pulled through csvc (the operator put them on the engine: the
test image ``csvc/busybox`` is one); with ``--public-images``, only those
with a name the list matches.  A project that pulls an image already public
under the default rule (the same image id, under whatever name), claims
nothing: the operator's image stays everyone's, and a project cannot take it
from the others by pulling its content under another name.

A pull is recorded before it reaches the engine (``csvc.store.images``): the
image it brings in is nobody's to see, under the default rule, while the pull
runs.  An admin sees and runs every image of every instance.

Not covered here (issue 22): tags are the engine's, shared by every project,
so a project that pulls ``alpine`` moves ``alpine:latest`` for all, and a
project whose image the tag no longer names must pull again; no removal,
tagging, loading or building of images.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from csvc.wire import commands
from csvc.compute.service import ImageNotFound
from csvc.agents.hub import InstanceUnavailable
from csvc.store.images import PULLING

#: Docker Hub's names for itself, dropped from a familiar reference
_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")

#: the longest reference or pattern (Docker's own limit on a name is 255)
MAX_REFERENCE = 512


def familiar(reference):
    """
    A reference as the engine lists it: ``docker.io/library/busybox`` ->
    ``busybox:latest``; ``host:5000/a/b`` -> ``host:5000/a/b:latest``.
    """
    name = _hub_prefix(reference.strip())
    if "@" in name or ":" in name.rsplit("/", 1)[-1]:
        return name
    return name + ":latest"


def names(image):
    """
    The familiar names of an engine image (its tags and digests).
    """
    found = []
    for name in list(image.get("RepoTags") or []) + list(image.get("RepoDigests") or []):
        if isinstance(name, str) and not name.startswith("<none>"):
            found.append(familiar(name))
    return found


class PublicImages:
    """
    Which images every project may use.  ``patterns``: references, or
    prefixes ending in ``*``, matched against an image's familiar names
    (``*`` alone: every image, named or not).  None: the images no project
    pulled through csvc are public.
    """

    def __init__(self, patterns=None):
        self.patterns = None if patterns is None else tuple(patterns)

    @classmethod
    def parse(cls, text):
        """
        ``--public-images``: empty (the default rule), or comma-separated
        references and prefixes ending in ``*``; ValueError naming what is
        wrong.
        """
        if text is None:
            return cls(None)
        items = text if isinstance(text, (list, tuple)) else str(text).split(",")
        items = [str(item).strip() for item in items if str(item).strip()]
        if not items:
            return cls(None)
        patterns = []
        for item in items:
            if len(item) > MAX_REFERENCE or any(c.isspace() for c in item):
                raise ValueError(f"{item[:80]!r} is not an image reference")
            if item.endswith("*"):
                prefix = item[:-1]
                if "*" in prefix:
                    raise ValueError(f"{item!r}: only a trailing * is allowed")
                patterns.append(_hub_prefix(prefix) + "*")
            else:
                if "*" in item:
                    raise ValueError(f"{item!r}: only a trailing * is allowed")
                patterns.append(familiar(item))
        return cls(patterns)

    @property
    def by_absence(self):
        """
        Whether the images nobody pulled are public (the default rule).
        """
        return self.patterns is None

    def matches(self, name):
        for pattern in self.patterns or ():
            if pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return True
            elif name == pattern:
                return True
        return False

    def covers(self, image, claims):
        """
        Whether ``image`` is public, given ``Claims`` on it.
        """
        if self.patterns is None:
            return not claims.claimed(image["Id"]) and not any(claims.pulling_name(n) for n in names(image))
        if "*" in self.patterns:
            return True
        return any(self.matches(name) for name in names(image))


class Claims:
    """
    Every project's claims on some images and the pulls running
    (``csvc.store.images.thd_claims``), indexed: each question about an
    image takes time linear in its names, not in the number of claims.
    """

    def __init__(self, rows):
        #: image id -> {familiar reference -> {project}}
        self._by_image = {}
        #: familiar reference -> {project} of the pulls running
        self._pulling = {}
        for row in rows:
            if row["image_id"] == PULLING:
                self._pulling.setdefault(row["reference"], set()).add(row["project_id"])
            else:
                references = self._by_image.setdefault(row["image_id"], {})
                references.setdefault(row["reference"], set()).add(row["project_id"])

    def claimed(self, image_id):
        return image_id in self._by_image

    def owned(self, project_id, image_id):
        return any(project_id in projects for projects in self._by_image.get(image_id, {}).values())

    def pulling_name(self, name):
        return name in self._pulling

    def hides(self, project_id, image_id, name):
        """
        Whether another project pulled ``image_id`` (or is pulling) by
        ``name`` and ``project_id`` did not.
        """
        projects = self._by_image.get(image_id, {}).get(name, set()) | self._pulling.get(name, set())
        return bool(projects) and project_id not in projects


def _hub_prefix(prefix):
    """
    A reference or a pattern's prefix with Docker Hub's own names for
    itself dropped (``docker.io/library/busybox`` -> ``busybox``).
    """
    for hub in _HUB_PREFIXES:
        if prefix.startswith(hub):
            prefix = prefix[len(hub):]
            break
    if prefix.startswith("library/") and "/" not in prefix[len("library/"):]:
        prefix = prefix[len("library/"):]
    return prefix


def usable(instances, project_id, connected):
    """
    The uuids of the active, connected instances a project may use (its own,
    then the shared ones, each in creation order), as placement chooses.
    """
    rows = [
        i for i in instances
        if i["status"] == "active" and i["uuid"] in connected
        and (i.get("project_id") == project_id or (i.get("project_id") is None and i.get("shared")))
    ]
    rows.sort(key=lambda i: (i.get("project_id") is None, i["created_at"], i["uuid"]))
    return [i["uuid"] for i in rows]


class TooManyPulls(Exception):
    """
    The project has as many pulls running as it may: a 429.
    """


class ProjectImages:
    log = Logger()

    #: Pulls one project may have running at once (an instance's engine
    #: pulls for every project, and a pull can take minutes).
    pulls_per_project = 2

    def __init__(self, store, hub, public=None):
        self._store = store
        self._hub = hub
        self.public = public if public is not None else PublicImages()
        #: project -> its pulls running
        self._pulls = {}

    def admit_pull(self, project_id):
        """
        Count a pull of ``project_id`` as running (``TooManyPulls`` when it
        has its share already); returns the callable that ends it.
        """
        running = self._pulls.get(project_id, 0)
        if running >= self.pulls_per_project:
            raise TooManyPulls(f"this project has {running} image pulls running, its most: try again when one "
                               "has finished")
        self._pulls[project_id] = running + 1

        def done():
            left = self._pulls[project_id] - 1
            if left:
                self._pulls[project_id] = left
            else:
                del self._pulls[project_id]

        return done

    # -- the rule ------------------------------------------------------------

    def may_use(self, project_id, image, claims):
        return claims.owned(project_id, image["Id"]) or self.public.covers(image, claims)

    def shown(self, project_id, image, claims):
        """
        ``image`` as the project sees it: without the names other projects
        pulled it by (and it did not), unless they are public.
        """
        ident = image["Id"]

        def kept(name):
            if not isinstance(name, str) or name.startswith("<none>"):
                return True
            name = familiar(name)
            return not claims.hides(project_id, ident, name) or self.public.matches(name)

        shown = dict(image)
        for key in ("RepoTags", "RepoDigests"):
            if isinstance(image.get(key), list):
                shown[key] = [name for name in image[key] if kept(name)]
        return shown

    @inlineCallbacks
    def _claims(self, image_ids):
        return Claims((yield self._store.image_claims(image_ids)))

    # -- where ----------------------------------------------------------------

    @inlineCallbacks
    def instances(self, identity, everywhere=False):
        """
        The connected instances the project may use; with ``everywhere``
        and an admin, every active connected instance.
        """
        rows = yield self._store.list_instances()
        connected = set(self._hub.connected_instances())
        if everywhere and identity.is_admin:
            return [i["uuid"] for i in rows if i["status"] == "active" and i["uuid"] in connected]
        return usable(rows, identity.project_id, connected)

    # -- what the API asks ----------------------------------------------------

    @inlineCallbacks
    def list(self, identity):
        """
        The images the project may use, one entry per image id.
        """
        instances = yield self.instances(identity, everywhere=True)
        listed = yield self._hub.list_images(instances)
        if identity.is_admin:
            return listed
        claims = yield self._claims([image["Id"] for image in listed])
        project = identity.project_id
        return [self.shown(project, image, claims) for image in listed if self.may_use(project, image, claims)]

    @inlineCallbacks
    def inspect(self, identity, name):
        """
        The image ``name`` (a reference, an id or id prefix) names on an
        instance the project may use, if the project may use it; else None.
        """
        for instance in (yield self.instances(identity, everywhere=True)):
            image = yield self._hub.image_on(instance, name)
            if image is None:
                continue
            if identity.is_admin:
                return image
            claims = yield self._claims([image["Id"]])
            if self.may_use(identity.project_id, image, claims):
                return self.shown(identity.project_id, image, claims)
        return None

    @inlineCallbacks
    def check_use(self, identity, instance, reference):
        """
        Fails with ``ImageNotFound`` unless the project may use the image
        ``reference`` names on ``instance`` (where a container is to be
        created from it).
        """
        if identity.is_admin:
            return None
        image = yield self._hub.image_on(instance, reference)
        if image is not None:
            claims = yield self._claims([image["Id"]])
            if self.may_use(identity.project_id, image, claims):
                return None
        raise ImageNotFound(f"No such image: {reference}")

    @inlineCallbacks
    def pull(self, identity, reference):
        """
        Pull ``reference`` onto every connected instance the project may
        use, and record it as the project's; fires with the image id, or
        fails with the engine's (the registry's) error when no pull worked.
        """
        instances = yield self.instances(identity)
        if not instances:
            raise InstanceUnavailable("no instance is connected that this project may use to pull the image onto")
        image_id, error = None, None
        for instance in instances:
            try:
                image_id = yield self._pull_on(identity.project_id, instance, reference)
            except Exception as exc:
                error = exc
        if image_id is None:
            raise error
        return image_id

    @inlineCallbacks
    def _pull_on(self, project_id, instance, reference):
        name = familiar(reference)
        there = set()
        if self.public.by_absence:
            # What the engine held before: an image the pull finds there
            # under any name, and nobody's, is the operator's.
            there = {image["Id"] for image in (yield self._hub.list_images([instance]))}
        yield self._store.image_pull_started(project_id, instance, name)
        try:
            result = yield self._hub.call(instance, commands.PullImage, image=reference)
            image_id = result["id"]
            claimed = image_id
            if image_id in there:
                claims = yield self._claims([image_id])
                if not claims.claimed(image_id):
                    # The operator's image stays everyone's.
                    claimed = None
        except Exception:
            yield self._store.image_pull_ended(project_id, instance, name, None)
            raise
        yield self._store.image_pull_ended(project_id, instance, name, claimed)
        self.log.info("project {project} pulled {reference} ({image_id}) onto {instance}", project=project_id,
                      reference=name, image_id=image_id, instance=instance)
        return image_id
