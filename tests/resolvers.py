"""
A stand-in of the reactor's ``IHostnameResolver`` for tests: names answer
from a table, any other name with one public address, at once.
"""

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver
from zope.interface import implementer

#: a public address (example.com's, once)
PUBLIC = "93.184.215.14"


@implementer(IHostnameResolver)
class TableResolver:
    def __init__(self, table=None, default=(PUBLIC,)):
        self.table = dict(table or {})
        self.default = tuple(default)
        self.asked = []

    def resolveHostName(self, resolutionReceiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        self.asked.append(hostName)
        resolutionReceiver.resolutionBegan(None)
        for address in self.table.get(hostName, self.default):
            kind = IPv6Address if ":" in address else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return None
