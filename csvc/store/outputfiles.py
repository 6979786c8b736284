"""
Container output in append-only files: the bytes on disk, positions in the
database.

Each container has two files under the output directory:

- ``UUID.out``: the chunks' bytes, back to back, in seq order;
- ``UUID.idx``: one fixed-size entry per chunk, entry ``seq`` at
  ``(seq - 1) * ENTRY.size``: where the chunk's bytes start in ``.out``,
  their length, the stream, when the chunk arrived and the agent's resume
  cursor after it.

Why files: SQLite inserting the bytes as BLOB rows moved 95-105 MB/s on
this machine, these files 480-730 MB/s, the same chunks in the same batches
(bench/output_store.py, docs/benchmarks.md "output_store"); and the agent's
window is acknowledged only once output is persisted, so that was the
ceiling of every container's output.  The database keeps what every other part reads
(``containers.last_seq`` and ``log_cursor``), committed after the bytes are
written; so the files are never behind what the database promises except
after a power loss, which ``reconcile`` repairs at start (see there).

Writes go through one thread (they are ordered per container and the files
are appended), reads through a small pool of their own so that a viewer
catching up never waits behind a write.  "Persisted" means what SQLite's
``synchronous=NORMAL`` means for the rest of the store: written to the
kernel, so a crash of the service loses nothing; a power loss may lose the
newest writes, which the agent then replays from the engine's log.

The page cache: the writer asks the kernel (``posix_fadvise``
``DONTNEED``) to drop a container's bytes once they are more than
``cache_bytes`` behind the end of its file.  The output is written once and
read back rarely (a replay, a viewer far behind): that keeps what a
container's output holds of the page cache bounded, and the writes reuse the
pages just dropped instead of taking new ones.  In a virtual machine whose
host backs memory on first touch and takes freed memory back, that is most
of a write's cost: bench/page_cache.py measured 0.3-1.9 system s/GiB with
every page kept (by where the pages came from) and 0.46-0.72 (one round
of eight: 1.18) with the dropping (docs/benchmarks.md, sixth session).
The first call on a range also starts its writeback; pages still dirty or
under writeback stay, and the next calls (which cover the range once more)
drop them.

Retention (csvc/store/retention.py): a container's oldest output is dropped
by punching a hole (``fallocate(FALLOC_FL_PUNCH_HOLE)``) over the bytes and
entries before its first kept chunk: the disk space goes back, no byte is
moved, every position stays what it was, and it costs one system call
whatever the size.  The database says where the kept output starts
(``containers.output_first``) and is committed first; the hole is punched
after, so a crash in between leaves bytes that are no longer shown, and the
start punches again.  Readers never go before the first kept chunk.  The
file systems csvc runs on (ext4, XFS, Btrfs, tmpfs) punch holes; on one that
cannot, the bytes stay on disk (logged once) though they are not shown.
"""

import ctypes
import errno
import os
import struct

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

#: offset in .out, length, stream, cursor length, arrival time, cursor.
ENTRY = struct.Struct("<QIBB2xd136s")

#: Open (.out, .idx) pairs the writer keeps; the least recently written is
#: closed past this.
MAX_OPEN = 128

#: Bytes of a container's newest output kept in the page cache by default.
CACHE_BYTES = 32 * 1024 * 1024

#: The writer drops pages once this many more bytes fell behind the cache.
TRIM_STEP = 8 * 1024 * 1024


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = getattr(_libc, "fallocate", None)
if _fallocate is not None:
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    _fallocate.restype = ctypes.c_int


def punch_hole(fd, offset, length):
    """
    Give back the disk space of ``length`` bytes at ``offset`` of ``fd``:
    they read as zeros after, the file keeps its size.
    """
    if length <= 0:
        return
    if _fallocate is None:
        raise OSError(errno.EOPNOTSUPP, "fallocate is not available")
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class OutputCorrupt(Exception):
    """
    A write would leave a hole in a container's output.
    """


class _Handle:
    __slots__ = ("out", "idx", "last_seq", "end", "trimmed", "punched")

    def __init__(self, out, idx, last_seq, end):
        self.out = out
        self.idx = idx
        self.last_seq = last_seq
        self.end = end
        # Where the last drop of pages from the cache ended.
        self.trimmed = 0
        # (.out, .idx) offsets up to which holes were punched.
        self.punched = (0, 0)

    def close(self):
        os.close(self.out)
        os.close(self.idx)


def _entries(fd):
    return os.fstat(fd).st_size // ENTRY.size


def _entry(fd, seq):
    """
    Entry ``seq`` (1-based) as (offset, length, stream, at, cursor).
    """
    raw = os.pread(fd, ENTRY.size, (seq - 1) * ENTRY.size)
    if len(raw) < ENTRY.size:
        return None
    offset, length, stream, cursor_len, at, cursor = ENTRY.unpack(raw)
    return offset, length, stream, at, cursor[:cursor_len].decode("ascii")


class OutputFiles:
    """
    The output of every container, in files under ``root``.
    """

    log = Logger()

    def __init__(self, root, clock, cache_bytes=CACHE_BYTES):
        """
        ``cache_bytes``: how much of each container's newest output to leave
        in the page cache; None leaves it all to the kernel.
        """
        self.root = root
        self._clock = clock
        self.cache_bytes = cache_bytes
        os.makedirs(root, exist_ok=True)
        self._writer = ThreadPool(minthreads=1, maxthreads=1, name="csvc-output-writer")
        self._readers = ThreadPool(minthreads=1, maxthreads=2, name="csvc-output-reader")
        # Writer thread only.
        self._handles = {}
        # Reactor thread: the newest seq of each container whose bytes are
        # written in this process's lifetime (readers stop there).
        self._readable = {}
        # Reactor thread: the first chunk each container keeps, where it is
        # not the first (readers start there).
        self._first = {}
        # Writer thread: holes cannot be punched here (logged once).
        self._no_holes = False

    def start(self):
        self._writer.start()
        self._readers.start()

    def stop(self):
        self._writer.stop()
        self._readers.stop()
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _paths(self, container_uuid):
        if not container_uuid or "/" in container_uuid or container_uuid.startswith("."):
            raise ValueError(f"not a container uuid: {container_uuid!r}")
        base = os.path.join(self.root, container_uuid)
        return base + ".out", base + ".idx"

    # -- writing -----------------------------------------------------------

    def append(self, chunks):
        """
        Write ``chunks``, ``(uuid, seq, stream, data, cursor)`` in seq order
        per container.  A chunk whose seq is already on disk replaces it and
        everything after it (an agent replaying after a reconnect may cut
        its chunks differently).  Fires once written.
        """
        at = self._clock.seconds()
        d = deferToThreadPool(self._clock, self._writer, self._thd_append, chunks, at)

        def written(last):
            for u, seq in last.items():
                self._readable[u] = seq

        return d.addCallback(written)

    def _handle(self, container_uuid):
        handle = self._handles.pop(container_uuid, None)
        if handle is None:
            out_path, idx_path = self._paths(container_uuid)
            out = os.open(out_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            idx = os.open(idx_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            last = _entries(idx)
            entry = _entry(idx, last) if last else None
            handle = _Handle(out, idx, last, entry[0] + entry[1] if entry else 0)
            while len(self._handles) >= MAX_OPEN:
                oldest = next(iter(self._handles))
                self._handles.pop(oldest).close()
        # Most recently used last.
        self._handles[container_uuid] = handle
        return handle

    def _rewind(self, handle, seq):
        """
        Make ``seq`` the last chunk on disk (dropping what follows).
        """
        if seq > _entries(handle.idx):
            raise OutputCorrupt(f"chunk {seq + 1} would follow chunk {seq}, which is not on disk")
        entry = _entry(handle.idx, seq) if seq else None
        end = entry[0] + entry[1] if entry else 0
        os.ftruncate(handle.idx, seq * ENTRY.size)
        os.ftruncate(handle.out, end)
        handle.last_seq, handle.end = seq, end
        handle.trimmed = min(handle.trimmed, end)

    def _thd_append(self, chunks, at):
        return self.write_now([chunk + (at,) for chunk in chunks])

    def write_now(self, chunks):
        """
        Write ``chunks``, ``(uuid, seq, stream, data, cursor, at)``, on the
        calling thread: the writer thread's work, and the start's (before
        the reactor runs) when output moves from database rows to files.
        """
        by_container = {}
        for chunk in chunks:
            by_container.setdefault(chunk[0], []).append(chunk)
        last = {}
        for u, run in by_container.items():
            handle = self._handle(u)
            first = run[0][1]
            if handle.last_seq != first - 1:
                self._rewind(handle, first - 1)
            datas, entries, offset = [], [], handle.end
            for expected, (_u, seq, stream, data, cursor, at) in enumerate(run, first):
                if seq != expected:
                    raise OutputCorrupt(f"output of {u} jumps from seq {expected - 1} to {seq}")
                raw_cursor = cursor.encode("ascii")
                datas.append(data)
                entries.append(ENTRY.pack(offset, len(data), stream, len(raw_cursor), at, raw_cursor))
                offset += len(data)
            # Bytes first, then the entries that point at them: an entry on
            # disk always has its bytes.
            if datas:
                os.pwritev(handle.out, datas, handle.end)
            os.pwrite(handle.idx, b"".join(entries), (first - 1) * ENTRY.size)
            handle.last_seq, handle.end = run[-1][1], offset
            last[u] = handle.last_seq
            if self.cache_bytes is not None:
                self._trim(handle)
        return last

    def _trim(self, handle):
        """
        Drop the pages of ``handle``'s bytes that are more than
        ``cache_bytes`` behind its end, every ``TRIM_STEP`` bytes.  Each
        call covers again the last ``cache_bytes`` (at least ``TRIM_STEP``)
        before where the previous one ended: pages that were still dirty or
        being written then are dropped now.
        """
        keep_from = handle.end - self.cache_bytes
        if keep_from - handle.trimmed < TRIM_STEP:
            return
        start = max(0, handle.trimmed - max(self.cache_bytes, TRIM_STEP))
        os.posix_fadvise(handle.out, start, keep_from - start, os.POSIX_FADV_DONTNEED)
        handle.trimmed = keep_from

    def delete(self, container_uuid):
        """
        Remove a container's output (after every write queued before).
        """
        self._readable.pop(container_uuid, None)
        self._first.pop(container_uuid, None)
        return deferToThreadPool(self._clock, self._writer, self._thd_delete, container_uuid)

    def _thd_delete(self, container_uuid):
        handle = self._handles.pop(container_uuid, None)
        if handle is not None:
            handle.close()
        for path in self._paths(container_uuid):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- reading -----------------------------------------------------------

    def read(self, container_uuid, after_seq=0, limit=64, before_seq=None, descending=False, with_time=False):
        """
        As ``Store.read_output``: up to ``limit`` chunks ``(seq, stream,
        data)`` (plus ``at`` with ``with_time``) with ``after_seq < seq <
        before_seq``, ascending or descending.
        """
        readable = self._readable.get(container_uuid)
        after_seq = max(after_seq, self._first.get(container_uuid, 1) - 1)
        return deferToThreadPool(
            self._clock, self._readers, self._thd_read, container_uuid, after_seq, limit, before_seq,
            descending, with_time, readable,
        )

    def _thd_read(self, container_uuid, after_seq, limit, before_seq, descending, with_time, readable):
        out_path, idx_path = self._paths(container_uuid)
        try:
            idx = os.open(idx_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return []
        try:
            # An entry on disk always has its bytes (they are written first);
            # a half-written entry at the end is not counted.
            last = _entries(idx) if readable is None else min(readable, _entries(idx))
            if before_seq is not None:
                last = min(last, before_seq - 1)
            first = after_seq + 1
            if last < first or limit <= 0:
                return []
            if descending:
                first = max(first, last - limit + 1)
            else:
                last = min(last, first + limit - 1)
            raw = os.pread(idx, (last - first + 1) * ENTRY.size, (first - 1) * ENTRY.size)
        finally:
            os.close(idx)
        entries = [ENTRY.unpack_from(raw, i * ENTRY.size) for i in range(len(raw) // ENTRY.size)]
        if not entries:
            return []
        start = entries[0][0]
        stop = entries[-1][0] + entries[-1][1]
        out = os.open(out_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            blob = os.pread(out, stop - start, start)
        finally:
            os.close(out)
        view = memoryview(blob)
        chunks = []
        for seq, (offset, length, stream, _cl, at, _cursor) in enumerate(entries, first):
            data = bytes(view[offset - start:offset - start + length])
            chunks.append((seq, stream, data, at) if with_time else (seq, stream, data))
        if descending:
            chunks.reverse()
        return chunks

    # -- retention ---------------------------------------------------------

    def drop_before(self, container_uuid, first):
        """
        The container keeps its output from chunk ``first`` on (the
        database says so already): readers start there at once, and the
        writer punches the rest out of its files (after every write queued
        before).
        """
        if first > self._first.get(container_uuid, 1):
            self._first[container_uuid] = first
        return deferToThreadPool(self._clock, self._writer, self.punch_now, container_uuid, first)

    def punch_now(self, container_uuid, first):
        """
        The writer's part of ``drop_before`` (and the start's): idempotent.
        """
        if container_uuid not in self._handles and not os.path.exists(self._paths(container_uuid)[1]):
            return  # deleted meanwhile: nothing to punch, nothing to create
        handle = self._handle(container_uuid)
        first = min(first, handle.last_seq + 1)
        if first <= 1:
            return
        entry = _entry(handle.idx, first) if first <= handle.last_seq else None
        out_end = entry[0] if entry is not None else handle.end
        idx_end = (first - 1) * ENTRY.size
        done_out, done_idx = handle.punched
        try:
            punch_hole(handle.out, done_out, out_end - done_out)
            punch_hole(handle.idx, done_idx, idx_end - done_idx)
        except OSError as exc:
            if not self._no_holes:
                self._no_holes = True
                self.log.error("cannot punch holes in output files under {root} ({error}): "
                               "dropped output stays on disk", root=self.root, error=exc.strerror)
            return
        handle.punched = (max(done_out, out_end), max(done_idx, idx_end))

    def known_first(self, container_uuid, first):
        """
        At start: where the container's kept output begins.
        """
        if first > 1:
            self._first[container_uuid] = first

    def skip_to(self, container_uuid, first):
        """
        On the calling thread (the start, moving rows into files): the
        chunks before ``first`` are gone, so the file starts at ``first``
        (empty entries stand for the others, a hole in the index).
        """
        handle = self._handle(container_uuid)
        if handle.last_seq < first - 1:
            os.ftruncate(handle.idx, (first - 1) * ENTRY.size)
            handle.last_seq = first - 1

    def thd_sizes(self, container_uuid, first, last, limit):
        """
        ``(seq, length)`` of chunks ``first`` to ``last`` (at most ``limit``),
        from the index, on the calling thread.
        """
        last = min(last, first + limit - 1)
        if last < first:
            return []
        raw = self._read_index(container_uuid, first, last)
        return [(seq, ENTRY.unpack_from(raw, i * ENTRY.size)[1])
                for i, seq in enumerate(range(first, first + len(raw) // ENTRY.size))]

    def thd_kept(self, container_uuid, first, last):
        """
        Bytes of chunks ``first`` to ``last``, on the calling thread.
        """
        if last < first:
            return 0
        start = self._read_index(container_uuid, first, first)
        end = self._read_index(container_uuid, last, last)
        if len(start) < ENTRY.size or len(end) < ENTRY.size:
            return 0
        begin = ENTRY.unpack(start)[0]
        offset, length = ENTRY.unpack(end)[:2]
        return max(0, offset + length - begin)

    def _read_index(self, container_uuid, first, last):
        try:
            idx = os.open(self._paths(container_uuid)[1], os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        try:
            raw = os.pread(idx, (last - first + 1) * ENTRY.size, (first - 1) * ENTRY.size)
        finally:
            os.close(idx)
        return raw[:len(raw) - len(raw) % ENTRY.size]

    # -- recovery ----------------------------------------------------------

    def reconcile(self, positions):
        """
        Bring the files in line with the database at start (blocking; call
        it before the reactor runs).  ``positions`` maps every container's
        uuid to the ``last_seq`` the database has.  Files of containers the
        database does not know are removed; chunks past ``last_seq`` (written
        but never acknowledged: the agent sends them again, maybe cut
        differently) are cut off.  A file *behind* the database (the newest
        writes lost to a power loss) is kept as it is, and the answer maps
        such a container to ``(seq, cursor)`` of its last chunk on disk: the
        database must go back there, so that the agent replays the rest from
        the engine's log.
        """
        behind = {}
        names = {}
        for name in os.listdir(self.root):
            base, dot, ext = name.rpartition(".")
            if dot and ext in ("out", "idx"):
                names.setdefault(base, set()).add(ext)
        for u in names:
            out_path, idx_path = self._paths(u)
            if u not in positions:
                for path in (out_path, idx_path):
                    if os.path.exists(path):
                        os.unlink(path)
                continue
            fd_out = os.open(out_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fd_idx = os.open(idx_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                handle = _Handle(fd_out, fd_idx, 0, 0)
                on_disk = _entries(fd_idx)
                # Entries whose bytes did not all reach the disk do not count.
                size = os.fstat(fd_out).st_size
                while on_disk:
                    entry = _entry(fd_idx, on_disk)
                    if entry[0] + entry[1] <= size:
                        break
                    on_disk -= 1
                keep = min(on_disk, positions[u])
                self._rewind(handle, keep)
                if keep < positions[u]:
                    entry = _entry(fd_idx, keep) if keep else None
                    behind[u] = (keep, entry[4] if entry else "")
            finally:
                os.close(fd_out)
                os.close(fd_idx)
        for u, last_seq in positions.items():
            if last_seq > 0 and u not in names:
                behind[u] = (0, "")
        return behind


class StoredFiles:
    """
    What the retention (csvc/store/retention.py) needs of output files: the
    chunks' sizes from the index; dropping is punching, after the commit
    (``OutputFiles.drop_before``).
    """

    def __init__(self, files):
        self._files = files

    def sizes(self, conn, uuid, first, last, limit):
        return self._files.thd_sizes(uuid, first, last, limit)

    def kept(self, conn, uuid, first, last):
        return self._files.thd_kept(uuid, first, last)

    def drop(self, conn, uuid, first):
        pass
