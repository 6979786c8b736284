"""
Settings of the Python process itself, for the long-running services
(``twistd csvc`` and ``twistd csvc-agent``): both relay bytes on the
reactor thread while other threads compute.
"""

import ctypes
import gc
import os
import sys

from twisted.application.service import Service

#: Seconds a thread may hold the GIL while another waits for it (Python's
#: default is 0.005).  The store's and the output files' threads run Python
#: (SQLAlchemy above all) while the reactor waits to relay a keystroke: with
#: the default, an echo waited up to 5 ms behind a commit.
GIL_SWITCH_INTERVAL = 0.0005


#: glibc's ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heap, not from a mmap of their own:
#: every output chunk (256 KiB) and every read (up to 512 KiB) would
#: otherwise be mapped, faulted in page by page, zeroed and unmapped.
MMAP_THRESHOLD = 4 * 1024 * 1024

#: Free memory at the top of the heap is given back to the system only past
#: this; glibc's default (128 KiB, raised as it goes) gave back and took
#: again the room of a few chunks many times a second.
TRIM_THRESHOLD = 64 * 1024 * 1024


def tune_allocator():
    """
    Keep the C allocator from mapping and unmapping memory for each large
    buffer.  Relaying a container's output, the control plane took 42-77
    page faults per MiB with glibc's settings and 3 with these
    (``bench/attach_throughput.py`` with and without ``--malloc-default``,
    docs/benchmarks.md, fifth session, with the CPU per GiB beside it).
    The cost: up to ``TRIM_THRESHOLD`` of freed memory stays with the
    process.  True when applied (glibc); other C libraries are left as they
    are, and so is glibc when ``$CSVC_MALLOC`` is ``default`` (what the
    benches compare against).
    """
    if os.environ.get("CSVC_MALLOC") == "default":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def tune(reactor):
    """
    Apply the settings; once the reactor runs (everything imported, the
    services built), move every object alive then out of the cyclic
    collector's reach (``gc.freeze``): a full collection then walks only
    what was made since, instead of every module, class and function of
    Twisted, SQLAlchemy and csvc each time it runs on the reactor thread.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    tune_allocator()
    reactor.callWhenRunning(_freeze)


def _freeze():
    gc.collect()
    gc.freeze()


class Tuning(Service):
    """
    ``tune`` as the process starts: the first service of ``twistd csvc``
    and ``twistd csvc-agent`` (twistd starts the services just before the
    reactor runs).
    """

    def __init__(self, reactor):
        self._reactor = reactor

    def startService(self):
        Service.startService(self)
        tune(self._reactor)
