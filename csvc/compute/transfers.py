"""
Archive transfers of ``ContainerService`` (``csvc.compute.service``): the
downloads (export, archive, changes, streamed stats) and uploads that run
through a container's agent, and a path's stat.
"""

from twisted.internet.defer import inlineCallbacks

from csvc.agents import transfers
from csvc.wire import commands


class ContainerTransfers:
    """
    The transfers of ``ContainerService``, which mixes this in: it reads
    the service's ``_hub`` and ``_downloads`` (a ``transfers.Downloads``).
    """

    def download(self, row, kind, options, request, transform=None, is_last=None):
        """
        A download (``export``, ``archive``, ``changes``, ``stats``) from the
        container's engine into the HTTP response ``request``: fires with
        ``(info, consumer)`` (``csvc.agents.transfers.Downloads.open``).
        """
        return self._downloads.open(row, kind, options, request, transform, is_last)

    @inlineCallbacks
    def archive_stat(self, row, path):
        result = yield self._hub.call(row["instance_uuid"], commands.ArchiveStat, uuid=row["uuid"], path=path)
        return result["path_stat"]

    def upload(self, row, source, length, options):
        """
        Extract the tar of ``length`` bytes read from the file ``source`` in
        the container at ``options["path"]``, sent to its agent in bounded
        chunks.
        """
        return transfers.upload(self._hub, row, source, length, options)
