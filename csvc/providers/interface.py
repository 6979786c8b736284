"""
What the scheduler asks of an instance provider.
"""

from zope.interface import Attribute, Interface


class IInstanceProvider(Interface):
    name = Attribute("The provider's name, as instance rows record it (``local``, ``nova``).")
    capacity = Attribute("Containers per instance it makes.")

    def create_instance(project_id):
        """
        Create one instance for ``project_id`` (only its containers go there)
        and start its agent.  Fires with the new instance row (status
        ``pending`` until its agent registers).
        """

    def size():
        """
        Fires with ``(memory, cpus)``: the memory (MiB) and cores of the
        instances this provider makes (None for one not known), so that a
        container larger than any of them is refused rather than waited for.
        """

    def remove_instance(row):
        """
        Stop and remove the instance of ``row`` (its agent and what runs it).
        Fires once it is gone.
        """
