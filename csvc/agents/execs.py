"""
The control plane's execs: which exec belongs to which container and
instance, and who consumes its output.

An agent streams an exec's output as ExecOutput boxes; the registry checks
that the agent's instance owns the exec and that the chunks come in order
within the window, and hands each to the exec's *consumer*, whose answer is
the agent's acknowledgement (so a consumer that holds its answer is the
backpressure).  A consumer has:

- ``output(stream, data)``: a Deferred (or None) that fires once the chunk is
  taken; raising ``OutputRefused`` tells the agent no one wants the output
  any more (it drops the exec's stream);
- ``exited(exit_code)``: the process exited, after every chunk was taken;
- ``failed(exc)``: the exec will not report any more (its agent is gone).

Two consumers are here: ``CollectedOutput`` for a non-interactive exec whose
whole output is the answer to one request, and (``exec_attach.py``) the
WebSocket session of an interactive one.
"""

from twisted.internet.defer import Deferred

from csvc.agents.bounds import NewestPerProject
from csvc.agents.streams import StreamRecord, StreamRegistry
from csvc.wire.commands import EXEC_WINDOW, NoSuchExec, OutputRefused

#: Largest output a non-interactive exec collects for its answer (by
#: default: ``--exec-output-max``; each running one also holds one of its
#: project's attach sessions, so a project holds at most that many).
MAX_COLLECTED = 1024 * 1024


class ExecOutputTooLarge(Exception):
    """
    A non-interactive exec wrote more than the collected output may hold.
    """


class ExecClaimed(Exception):
    """
    The exec already has a consumer (it was started or attached before).
    """


class ExecSlot:
    """
    A running exec with no attach session of its own (its output collected
    for one answer, or dropped when detached), counted among the relay's
    sessions against its project's ``attach_sessions`` quota.
    """

    def __init__(self, project_id):
        self.project_id = project_id


class ExecRecord(StreamRecord):
    def __init__(self, exec_id, container_uuid, instance_uuid, tty, interactive, project_id=None, window=EXEC_WINDOW):
        super().__init__(instance_uuid, None, project_id, window)
        self.exec_id = exec_id
        self.container_uuid = container_uuid
        self.tty = tty
        self.interactive = interactive


class ExecRegistry(StreamRegistry):
    """
    Execs created through this control plane and not over yet, each of a
    project.  Created execs nobody started (an interactive exec whose URL
    was never used) are dropped oldest first: a project's own beyond
    ``max_unclaimed_per_project``; beyond ``max_unclaimed`` in all, those of
    the project holding the most (the one registering on a tie), so that
    a project filling its share never drops another's.  (Started execs are
    counted against their project's attach sessions.)
    """

    max_unclaimed = 1024
    max_unclaimed_per_project = 64
    kind = "exec"

    def __init__(self, window=EXEC_WINDOW):
        super().__init__(window)
        #: The unclaimed execs' ids, by project, oldest first.
        self._unclaimed = NewestPerProject()

    def _forget_unclaimed(self, record):
        self._unclaimed.discard(record.exec_id)

    def _remove(self, exec_id):
        record = self._records.pop(exec_id, None)
        if record is not None and record.consumer is None:
            self._forget_unclaimed(record)
        return record

    def register(self, exec_id, container_uuid, instance_uuid, tty, interactive, project_id=None):
        self._remove(exec_id)
        record = ExecRecord(exec_id, container_uuid, instance_uuid, tty, interactive, project_id, self._window)
        self._records[exec_id] = record
        dropped = self._unclaimed.add(exec_id, project_id, self.max_unclaimed_per_project, self.max_unclaimed)
        for old in dropped:
            self._remove(old)
        return record

    def get(self, exec_id, container_uuid=None, project_id=None):
        """
        The record of an exec of that container (and project): another's
        is ``NoSuchExec``, as one that does not exist.
        """
        record = self._records.get(exec_id)
        if record is None or (container_uuid is not None and record.container_uuid != container_uuid) or (
                project_id is not None and record.project_id != project_id):
            raise NoSuchExec(f"exec {exec_id} not found")
        return record

    def claim(self, exec_id, consumer, container_uuid=None):
        """
        Make ``consumer`` the one that takes the exec's output (before the
        exec starts: output may come before the start is answered).
        """
        record = self.get(exec_id, container_uuid)
        if record.consumer is not None:
            raise ExecClaimed(f"exec {exec_id} is already started")
        self._forget_unclaimed(record)
        record.consumer = consumer
        return record

    def discard(self, exec_id):
        """
        No one wants this exec's output any more: what the agent still sends
        is refused (and the agent drops the stream).
        """
        self._remove(exec_id)

    # -- from agents -------------------------------------------------------

    def _owned(self, instance_uuid, exec_id):
        record = super()._owned(instance_uuid, exec_id)
        if record.consumer is None:
            raise OutputRefused(f"exec {exec_id} was not started by the control plane")
        return record

    def output(self, instance_uuid, exec_id, seq, stream, data):
        record = self._owned(instance_uuid, exec_id)
        self._admit(record, exec_id, seq)
        if stream not in (1, 2):
            raise OutputRefused(f"exec {exec_id}: stream {stream} is not 1 or 2")
        return self._take(record, seq, record.consumer.output, stream, data)

    def exited(self, instance_uuid, exec_id, exit_code):
        record = self._owned(instance_uuid, exec_id)
        self._remove(exec_id)
        record.consumer.exited(exit_code)

    def instance_lost(self, instance_uuid, exc):
        """
        The instance's agent disconnected: its execs cannot report again.
        """
        for record in self._lost(instance_uuid):
            if record.consumer is not None:
                record.consumer.failed(exc)


class CollectedOutput:
    """
    The consumer of a non-interactive exec: stdout and stderr together in
    arrival order, at most ``limit`` bytes.  ``done`` fires with
    ``{"output": text, "exit_code": N}`` (the text decoded as UTF-8, bad
    bytes replaced); it fails with ``ExecOutputTooLarge`` as soon as the
    output passes the limit.  ``on_abandon`` is called when the output is
    no longer wanted (too large, or ``done`` cancelled: the client left).
    """

    def __init__(self, on_abandon, limit=MAX_COLLECTED):
        self._on_abandon = on_abandon
        self._limit = limit
        self._parts = []
        self._size = 0
        self.done = Deferred(self._cancelled)

    def _cancelled(self, _):
        self._abandon()

    def _abandon(self):
        self._parts = []
        on_abandon, self._on_abandon = self._on_abandon, None
        if on_abandon is not None:
            on_abandon()

    def output(self, stream, data):
        if self.done.called:
            raise OutputRefused("the exec's output is no longer wanted")
        if self._size + len(data) > self._limit:
            self._abandon()
            self.done.errback(
                ExecOutputTooLarge(
                    f"the exec's output passed {self._limit} bytes ({self._limit // (1024 * 1024)} MiB), "
                    "the most a non-interactive exec collects; run it with interactive=true to stream it"
                )
            )
            raise OutputRefused("the exec's output passed the collected limit")
        self._parts.append(data)
        self._size += len(data)
        return None

    def exited(self, exit_code):
        if self.done.called:
            return
        output = b"".join(self._parts).decode("utf-8", "replace")
        self._parts = []
        self.done.callback({"output": output, "exit_code": exit_code})

    def failed(self, exc):
        if not self.done.called:
            self._parts = []
            self.done.errback(exc)
