"""
What the scheduler asks of an instance provider.
"""

from zope.interface import Attribute, Interface


class IInstanceProvider(Interface):
    name = Attribute("The provider's name, as instance rows record it (``local``, ``nova``).")

    def create_instance(project_id):
        """
        Create one instance for ``project_id`` (only its containers go there)
        and start its agent.  Fires with the new instance row (status
        ``pending`` until its agent registers).
        """

    def remove_instance(row):
        """
        Stop and remove the instance of ``row`` (its agent and what runs it).
        Fires once it is gone.
        """
