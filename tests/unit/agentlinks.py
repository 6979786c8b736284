"""
A stand-in for the agent's AMP link in tests of ``AgentCore``: every call is
recorded and answered at once.
"""

from twisted.internet.defer import succeed


class RecordingLink:
    def __init__(self):
        self.calls = []

    def callRemote(self, command, **kwargs):
        self.calls.append((command, kwargs))
        return succeed({})
