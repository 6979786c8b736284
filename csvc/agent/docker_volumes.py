"""
Volumes on a Docker engine: the engine's volume calls (``DockerVolumes``, a
mixin of ``DockerEngine``).
"""

from docker import errors as docker_errors

from csvc.wire.commands import Conflict, NoSuchVolume


class DockerVolumes:
    """
    ``DockerEngine``'s volume calls (it mixes this in), run by its ``_call``.
    """

    def _volume_call(self, fn, *args):
        def run(c, *args):
            try:
                return fn(c, *args)
            except docker_errors.NotFound as exc:
                raise NoSuchVolume(str(exc.explanation or exc)) from None
            except docker_errors.APIError as exc:
                if exc.status_code == 409:
                    raise Conflict(str(exc.explanation or exc)) from None
                raise

        return self._call(run, *args)

    def list_volumes(self, prefix):
        def listed(c):
            found = c.api.volumes(filters={"name": prefix}).get("Volumes") or []
            return [v for v in found if v["Name"].startswith(prefix)]

        return self._volume_call(listed)

    def create_volume(self, name, labels):
        return self._volume_call(lambda c: c.api.create_volume(name, labels=labels or None))

    def inspect_volume(self, name):
        return self._volume_call(lambda c: c.api.inspect_volume(name))

    def remove_volume(self, name, force):
        return self._volume_call(lambda c: c.api.remove_volume(name, force=force))
