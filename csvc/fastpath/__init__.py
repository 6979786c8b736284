"""
The fast path: the one place where csvc uses private internals of Twisted
and autobahn, for speed, and the switch that decides whether it does.

Everything here has a counterpart on public APIs that behaves the same
(only slower), used when the switch is off:

| module | private internals it uses | public path |
| --- | --- | --- |
| ``sockets.py`` | ``FileDescriptor``'s queue (``dataBuffer``, ``offset``, ``_tempDataBuffer``, ``_writeDisconnecting``) | ``transport.write`` |
| ``boxes.py`` | AMP's parser, tags, outstanding calls and dispatch table (``_locked``, ``_nextTag``, ``_outstandingRequests``, ``_commandDispatch``...) | ``amp.AMP`` with ``csvc.wire.responders.SafeResponders`` |
| ``frames.py`` | autobahn's frame parser and sender state (``_dataReceived``, ``send_state``, ``_perMessageCompress``...) | ``sendMessage`` (frames of at most 64 KiB) and autobahn's own parser |

``--fast-path on|off|auto`` (both ``twistd csvc`` and ``twistd
csvc-agent``; default ``$CSVC_FAST_PATH``, else ``auto``) sets the switch
once, at start-up (``FastPathSwitch``, each process's first service):
``auto`` turns it on only with the exact releases of Twisted and autobahn
it was tested with (``TESTED``), so a newer Twisted gets the public path
instead of breaking.  An agent link reads the switch when it is made; a
socket write and a WebSocket's frames, on each call.
"""

import os
from importlib import metadata

from twisted.application.service import Service
from twisted.logger import Logger

MODES = ("on", "off", "auto")

#: The releases the fast path was written and tested against.
TESTED = {"twisted": "26.10.0", "autobahn": "26.11.1"}

ENVIRONMENT = "CSVC_FAST_PATH"

_log = Logger()


def installed_versions():
    """
    ``{distribution: version}`` of what ``TESTED`` names, as installed.
    """
    versions = {}
    for name in TESTED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def decide(mode, versions=None):
    """
    Whether ``mode`` (``on``, ``off`` or ``auto``) turns the fast path on
    with ``versions`` installed (default: what is installed).  ``ValueError``
    names a mode that is none of them.
    """
    if mode not in MODES:
        raise ValueError(f"fast-path must be one of {', '.join(MODES)}, not {mode!r}")
    if mode != "auto":
        return mode == "on"
    if versions is None:
        versions = installed_versions()
    return all(versions.get(name) == version for name, version in TESTED.items())


class Switch:
    """
    Whether the fast path is on in this process.
    """

    def __init__(self, on):
        self.on = on

    def use(self, mode, versions=None):
        """
        Set from an option's ``mode``; logs what was chosen and why.
        """
        self.on = decide(mode, versions)
        if versions is None:
            versions = installed_versions()
        _log.info(
            "fast path {state} (--fast-path {mode}; tested with {tested}, installed {installed})",
            state="on" if self.on else "off",
            mode=mode,
            tested=", ".join(f"{k} {v}" for k, v in sorted(TESTED.items())),
            installed=", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        )
        return self.on


def default_mode():
    """
    The option's default: ``$CSVC_FAST_PATH``, else ``auto``.
    """
    return os.environ.get(ENVIRONMENT) or "auto"


def _from_environment():
    try:
        return decide(default_mode())
    except ValueError:
        # Reported by the option's own check, which reads the same default.
        return False


#: The process's switch, before any option is read: from the environment.
SWITCH = Switch(_from_environment())


class FastPathSwitch(Service):
    """
    Sets the process's switch from ``--fast-path`` when started: first
    among a process's services, before any connection is made.
    """

    def __init__(self, mode=None, switch=SWITCH):
        self.mode = mode or default_mode()
        self._switch = switch

    def startService(self):
        Service.startService(self)
        self._switch.use(self.mode)
