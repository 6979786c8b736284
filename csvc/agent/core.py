"""
The agent's core: what it knows of its engine's containers and how it keeps
their output flowing to the control plane.  The AMP protocol in ``link.py``
only translates boxes into calls on this object.

A container's output is read from an attach stream the agent opens before it
starts the container (every byte at once), or, when the agent did not see the
start (its own restart, the engine's restart policy), from the engine's log,
skipping what the store already has (``csvc.stdio.reader``).
"""

import datetime

from twisted.internet.defer import Deferred, DeferredLock, fail, inlineCallbacks
from twisted.logger import Logger

from csvc.wire import commands
from csvc.agent.execs import ExecRunner
from csvc.agent.stdin import StdinStream
from csvc.agent.transfers import Downloads, Uploads
from csvc.stdio.reader import OutputReader


class ContainerWatch:
    """
    One container the agent follows: where its output stands.
    """

    def __init__(self, uuid, engine_id, tty, seq=0, cursor="", auto_remove=False):
        self.uuid = uuid
        self.engine_id = engine_id
        self.tty = tty
        self.seq = seq
        self.cursor = cursor
        self.auto_remove = auto_remove
        self.follower = None
        self.stdin = None
        self.stdin_lock = DeferredLock()
        #: the exit of its last run as the engine's ``die`` event told it
        self.exit_code = None
        #: the current run's end from the ``die`` event, as an inspect
        #: summary, once it came (None before, and after the next start)
        self.died = None
        #: the agent started a run whose ``start`` event has not come: a
        #: ``die`` event until then is the previous run's
        self.start_pending = False
        #: called with the current run's ``died`` when its die event comes
        self.on_died = None


class Enrolled(Exception):
    """
    The agent enrolled on this link and stored its new certificate: it
    connects again, presenting it.
    """


class AgentCore:
    log = Logger()

    #: Seconds a container found missing waits for the engine's destroy event.
    destroy_grace = 2.0

    def __init__(self, engine, enroll_token, capacity, hostname, follower_factory, *, clock, identity=None,
                 on_enrolled=None):
        self._engine = engine
        self.engine = engine
        self._enroll_token = enroll_token
        #: ``csvc.agent.identity.AgentIdentity`` where the control plane is
        #: the agents' CA: enroll once, then register by certificate
        self._identity = identity
        #: called once enrolled (the token is then of no use: its file goes)
        self._on_enrolled = on_enrolled
        self._renewing = False
        self._capacity = capacity
        self._hostname = hostname
        self._follower_factory = follower_factory
        self._clock = clock
        self.link = None
        self.instance_uuid = None
        self.heartbeat_interval = None
        self._watches = {}
        self.execs = ExecRunner(engine, self._call, clock)
        self.downloads = Downloads(engine, self._call)
        self.uploads = Uploads(engine)

    # -- the link ----------------------------------------------------------

    @inlineCallbacks
    def connected(self, link):
        """
        A new connection to the control plane: register, then resume the
        output of every container from where the store has it.
        """
        if self._identity is not None and self._identity.certificate() is None:
            yield self._enroll(link)
        inventory = yield self._engine.inventory()
        try:
            facts = yield self._engine.facts()
        except Exception:
            facts = {}
        result = yield link.callRemote(
            commands.Register,
            # An agent with a certificate of its own is known by it.
            enroll_token=self._enroll_token if self._identity is None else "",
            engine=self._engine.name,
            capacity=self._capacity,
            hostname=self._hostname,
            containers=inventory,
            facts=facts,
            protocol=commands.PROTOCOL,
        )
        self.link = link
        self.instance_uuid = result["instance_uuid"]
        self.heartbeat_interval = result["heartbeat_interval"]
        resume = result["resume"]
        self.log.info(
            "registered as instance {instance} with {n} containers",
            instance=self.instance_uuid,
            n=len(inventory),
        )
        for item in inventory:
            position = resume.get(item["uuid"])
            if position is None:
                continue
            watch = self._watches.get(item["uuid"])
            if watch is None:
                watch = ContainerWatch(item["uuid"], item["engine_id"], item["tty"], auto_remove=item["auto_remove"])
                self._watches[item["uuid"]] = watch
            watch.seq, watch.cursor = position["seq"], position["cursor"]
            if item["state"] != "created" and watch.follower is None:
                self._follow_log(watch)
        self.renew_if_due()
        return result

    @inlineCallbacks
    def _enroll(self, link):
        """
        Trade the one-time enrollment token for a certificate, store it,
        and fail with ``Enrolled``: the link closes and the next connection
        presents the certificate.
        """
        if not self._enroll_token:
            raise commands.NotEnrolled("this agent has no certificate in its state directory and no enrollment token")
        result = yield link.callRemote(
            commands.Enroll, enroll_token=self._enroll_token, csr=self._identity.request(),
            protocol=commands.PROTOCOL,
        )
        cert = self._identity.store(result["certificate"])
        self._enroll_token = None
        self.log.info(
            "enrolled as instance {instance}: certificate valid until {until} in {dir}",
            instance=result["instance_uuid"], until=cert.not_valid_after_utc.isoformat(),
            dir=self._identity.state_dir,
        )
        if self._on_enrolled is not None:
            self._on_enrolled()
        raise Enrolled(result["instance_uuid"])

    def renew_if_due(self):
        """
        Ask the control plane for a new certificate when the agent's own
        expires soon (checked at registration and every heartbeat).
        """
        if self._identity is None or self.link is None or self._renewing:
            return
        now = datetime.datetime.fromtimestamp(self._clock.seconds(), datetime.timezone.utc)
        if not self._identity.renewal_due(now):
            return
        self._renewing = True
        d = self.link.callRemote(commands.Renew, csr=self._identity.request())
        d.addCallback(lambda result: self._identity.store(result["certificate"]))

        def renewed(cert):
            self.log.info("renewed this agent's certificate: valid until {until}",
                          until=cert.not_valid_after_utc.isoformat())

        def failed(failure):
            self.log.warn("renewing this agent's certificate failed: {why}", why=failure.getErrorMessage())

        def done(_):
            self._renewing = False

        d.addCallbacks(renewed, failed)
        d.addBoth(done)

    def disconnected(self, link):
        if self.link is not link:
            return
        self.link = None
        self.execs.disconnected()
        self.downloads.disconnected()
        self.uploads.disconnected()
        for watch in self._watches.values():
            if watch.follower is not None:
                watch.follower.stop()

    def _call(self, command, **kwargs):
        if self.link is None:
            return fail(ConnectionError("not connected to the control plane"))
        return self.link.callRemote(command, **kwargs)

    # -- requests from the control plane -----------------------------------

    @inlineCallbacks
    def create(self, spec):
        try:
            engine_id = yield self._engine.create(spec)
        except commands.Refused as exc:
            self.log.warn("the wall refused the create of container {uuid}: {why}", uuid=spec.get("uuid"),
                          why=str(exc))
            raise
        self._watches[spec["uuid"]] = ContainerWatch(
            spec["uuid"], engine_id, bool(spec.get("tty")), auto_remove=bool(spec.get("auto_remove"))
        )
        return engine_id

    @inlineCallbacks
    def start(self, uuid):
        watch = yield self._watch(uuid)
        if watch.follower is not None:
            # The previous run's stream is still draining; its end comes
            # with the exit that made this start possible.
            try:
                yield watch.follower.done
            except Exception:
                pass
        follower = self._new_follower(watch, skip=False)
        # The output attach is open before the process runs: nothing missed.
        yield self._engine.attach(watch.engine_id, follower)
        watch.died = None
        watch.start_pending = True
        try:
            yield self._engine.start_container(uuid)
        except Exception:
            watch.start_pending = False
            follower.stop()
            raise

    def stop(self, uuid, timeout):
        return self._engine.stop_container(uuid, timeout)

    def kill(self, uuid, signal):
        return self._engine.kill_container(uuid, signal)

    @inlineCallbacks
    def remove(self, uuid, force, volumes=False):
        watch = self._watches.pop(uuid, None)
        if watch is not None:
            if watch.follower is not None:
                watch.follower.stop()
            if watch.stdin is not None:
                watch.stdin.transport.loseConnection()
        yield self._engine.remove_container(uuid, force, volumes)

    def resume(self, uuid, seq, cursor):
        watch = self._watches.get(uuid)
        if watch is None:
            raise commands.NoSuchContainer(uuid)
        if watch.follower is not None:
            watch.follower.stop()
        watch.seq, watch.cursor = seq, cursor
        self._follow_log(watch)

    def write_stdin(self, uuid, data):
        """
        Write to the container's stdin; fires once the engine has taken it.
        """
        watch = self._watches.get(uuid)
        if watch is not None and watch.stdin is not None and not watch.stdin.closed and not watch.stdin_lock.locked:
            # The usual keystroke: the stream is open and nothing is ahead of
            # this write, so it goes at once (the lock would only order it
            # behind nothing, at the cost of a few Deferreds per key).
            return watch.stdin.write(data)
        return self._write_stdin_in_turn(uuid, data)

    @inlineCallbacks
    def _write_stdin_in_turn(self, uuid, data):
        drained = yield self._with_stdin(uuid, lambda stream: stream.write(data))
        yield drained

    def close_stdin(self, uuid):
        return self._with_stdin(uuid, lambda stream: stream.close())

    def resize(self, uuid, height, width):
        return self._engine.resize(uuid, height, width)

    @inlineCallbacks
    def _with_stdin(self, uuid, action):
        """
        Run ``action(stream)`` on the container's stdin stream (opened on
        demand), under the container's stdin lock: writes and the close
        reach the engine in the order they were asked for.
        """
        watch = yield self._watch(uuid)
        yield watch.stdin_lock.acquire()
        try:
            if watch.stdin is None or watch.stdin.closed:

                def lost(stream):
                    if watch.stdin is stream:
                        watch.stdin = None

                stream = StdinStream(lost)
                yield self._engine.attach(watch.engine_id, stream, stdin=True, output=False)
                watch.stdin = stream
            return action(watch.stdin)
        finally:
            watch.stdin_lock.release()

    # -- engine events -----------------------------------------------------

    @inlineCallbacks
    def engine_started(self, uuid, started_at):
        """
        The engine started a container (ours, or its restart policy).
        """
        watch = self._watches.get(uuid)
        if watch is None:
            return
        watch.start_pending = False
        watch.died = None
        if watch.follower is None:
            # Not started by this agent: the log has every byte.
            self._follow_log(watch)
        try:
            yield self._call(commands.Started, uuid=uuid, started_at=started_at)
        except Exception:
            self.log.debug("could not report the start of {uuid}", uuid=uuid)

    def engine_died(self, uuid, exit_code, finished_at=""):
        """
        The engine says a container's process exited (kept in case the
        container is then removed before its exit can be read, and reported
        as the run's exit once its output has drained).
        """
        watch = self._watches.get(uuid)
        if watch is None:
            return
        watch.exit_code = exit_code
        if watch.start_pending:
            # The previous run's, come late: the current one has not begun.
            return
        watch.died = {"running": False, "state": "exited", "exit_code": exit_code, "finished_at": finished_at}
        if watch.on_died is not None:
            watch.on_died(watch.died)

    def engine_destroyed(self, uuid):
        """
        The engine removed a container.  One the service removed is no longer
        watched (``remove`` forgets it first); one still watched was removed
        behind the service's back, and is reported.
        """
        watch = self._watches.get(uuid)
        if watch is None:
            return None
        return self._vanished(watch, "destroy")

    @inlineCallbacks
    def _vanished(self, watch, seen):
        """
        Forget the container and report it gone, once its output stream has
        drained (every chunk acknowledged, so ``last_seq`` is final).
        """
        if self._watches.get(watch.uuid) is not watch:
            return
        del self._watches[watch.uuid]
        if watch.stdin is not None:
            watch.stdin.transport.loseConnection()
        if watch.follower is not None:
            try:
                yield watch.follower.done
            except Exception:
                pass
        self.log.warn("container {uuid} was removed from the engine, not by the service ({seen})",
                      uuid=watch.uuid, seen=seen)
        try:
            yield self._call(
                commands.Vanished,
                uuid=watch.uuid,
                seen=seen,
                exit_code=-1 if watch.exit_code is None else watch.exit_code,
                last_seq=watch.seq,
            )
        except Exception as exc:
            # A later registration reports it missing from the inventory.
            self.log.info("removal of {uuid} not reported: {why}", uuid=watch.uuid, why=str(exc))

    @inlineCallbacks
    def _watch(self, uuid):
        watch = self._watches.get(uuid)
        if watch is None:
            summary = yield self._engine.inspect(uuid)
            watch = ContainerWatch(uuid, summary["engine_id"], summary["tty"], auto_remove=summary["auto_remove"])
            self._watches[uuid] = watch
        return watch

    # -- output ------------------------------------------------------------

    def _new_follower(self, watch, skip):
        uuid = watch.uuid

        def send(seq, stream, data, cursor):
            return self._call(commands.Output, uuid=uuid, seq=seq, stream=stream, data=data, cursor=cursor)

        reader = OutputReader(watch.tty, watch.cursor, skip=skip)
        follower = self._follower_factory(send, reader, watch.seq)
        watch.follower = follower
        follower.done.addCallbacks(
            self._follow_ended,
            self._follow_failed,
            callbackArgs=(watch, follower),
            errbackArgs=(watch, follower),
        )
        return follower

    def _follow_log(self, watch):
        follower = self._new_follower(watch, skip=True)
        self._engine.follow_logs(watch.engine_id, follower).addErrback(follower.fail)

    def _run_end(self, watch):
        """
        How the container stands now that its output stream ended: the
        engine's ``die`` event for this run, or its inspect summary, whichever
        comes first.  The die event usually comes within a few milliseconds
        of the stream's end, while inspect waits for the engine to close the
        container's log: 0.9-1.05 s after 256 MiB of output (local log
        driver, measured by bench/attach_throughput.py as the time from the
        last byte to the exit status).  An engine without events (LXC), or
        an event stream that is down, leaves inspect.
        """
        d = Deferred()

        def settle(result):
            if not d.called:
                watch.on_died = None
                d.callback(result)

        if watch.died is not None:
            settle(watch.died)
            return d
        watch.on_died = settle
        self._engine.inspect(watch.uuid).addBoth(settle)
        return d

    def _follow_failed(self, failure, watch, follower):
        if watch.follower is follower:
            watch.follower = None
        if self.link is not None:
            self.log.warn("output of {uuid} interrupted: {why}", uuid=watch.uuid, why=failure.getErrorMessage())

    @inlineCallbacks
    def _follow_ended(self, last_seq, watch, follower):
        """
        The engine closed the output stream: the process exited (or the
        stream broke).  Every chunk is acknowledged, so the exit can be
        reported.
        """
        watch.seq, watch.cursor = follower.seq, follower.cursor
        if watch.follower is follower:
            watch.follower = None
        if self._watches.get(watch.uuid) is not watch:
            return
        try:
            summary = yield self._run_end(watch)
        except commands.NoSuchContainer:
            # Gone, and not through ``remove`` (the watch would be gone too).
            # The engine's destroy event, which follows its die event (with
            # the exit code), is usually on its way: it reports it; this is
            # for an event stream that is down.
            self._clock.callLater(self.destroy_grace, self._vanished, watch, "missing")
            return
        if summary["running"]:
            if watch.follower is None:
                self._follow_log(watch)
            return
        if summary["state"] not in ("exited", "dead") or watch.follower is not None:
            return
        try:
            yield self._call(
                commands.Exited,
                uuid=watch.uuid,
                exit_code=summary["exit_code"],
                last_seq=watch.seq,
                finished_at=summary["finished_at"] or "",
                removed=False,
            )
        except Exception as exc:
            self.log.info("exit of {uuid} not reported yet: {why}", uuid=watch.uuid, why=str(exc))
            return
        if watch.auto_remove and watch.follower is None:
            self._watches.pop(watch.uuid, None)
            try:
                # (As Docker's --rm: its anonymous volumes go with it.)
                yield self._engine.remove_container(watch.uuid, True, True)
            except commands.NoSuchContainer:
                pass
