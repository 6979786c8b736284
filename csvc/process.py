"""
Settings of the Python process itself, for the long-running services
(``twistd csvc`` and ``twistd csvc-agent``): both relay bytes on the
reactor thread while other threads compute.
"""

import gc
import sys

#: Seconds a thread may hold the GIL while another waits for it (Python's
#: default is 0.005).  The store's and the output files' threads run Python
#: (SQLAlchemy above all) while the reactor waits to relay a keystroke: with
#: the default, an echo waited up to 5 ms behind a commit.
GIL_SWITCH_INTERVAL = 0.0005


def tune(reactor):
    """
    Apply the settings; once the reactor runs (everything imported, the
    services built), move every object alive then out of the cyclic
    collector's reach (``gc.freeze``): a full collection then walks only
    what was made since, instead of every module, class and function of
    Twisted, SQLAlchemy and csvc each time it runs on the reactor thread.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    reactor.callWhenRunning(_freeze)


def _freeze():
    gc.collect()
    gc.freeze()
