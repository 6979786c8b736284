"""
The agent's core: what it knows of its engine's containers and how it keeps
their output flowing to the control plane.  The AMP protocol in ``link.py``
only translates boxes into calls on this object.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from csvc.agent import commands
from csvc.stdio.logreader import since_param


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


class AgentCore:
    log = Logger()

    def __init__(self, engine, enroll_token, capacity, hostname, follower_factory):
        self._engine = engine
        self._enroll_token = enroll_token
        self._capacity = capacity
        self._hostname = hostname
        self._follower_factory = follower_factory
        self.link = None
        self.instance_uuid = None
        self.heartbeat_interval = None
        self._watches = {}

    # -- the link ----------------------------------------------------------

    @inlineCallbacks
    def connected(self, link):
        """
        A new connection to the control plane: register, then resume the
        output of every container from where the store has it.
        """
        inventory = yield self._engine.inventory()
        result = yield link.callRemote(
            commands.Register,
            enroll_token=self._enroll_token,
            engine=self._engine.name,
            capacity=self._capacity,
            hostname=self._hostname,
            containers=inventory,
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
            watch = ContainerWatch(
                item["uuid"],
                item["engine_id"],
                item["tty"],
                position["seq"],
                position["cursor"],
                item["auto_remove"],
            )
            self._watches[item["uuid"]] = watch
            if item["state"] != "created":
                self._follow(watch)
        return result

    def disconnected(self, link):
        if self.link is not link:
            return
        self.link = None
        for watch in self._watches.values():
            if watch.follower is not None:
                watch.follower.stop()

    def _call(self, command, **kwargs):
        if self.link is None:
            from twisted.internet.defer import fail

            return fail(ConnectionError("not connected to the control plane"))
        return self.link.callRemote(command, **kwargs)

    # -- requests from the control plane -----------------------------------

    @inlineCallbacks
    def create(self, spec):
        engine_id = yield self._engine.create(spec)
        self._watches[spec["uuid"]] = ContainerWatch(
            spec["uuid"], engine_id, bool(spec.get("tty")), auto_remove=bool(spec.get("auto_remove"))
        )
        return engine_id

    @inlineCallbacks
    def start(self, uuid):
        yield self._engine.start_container(uuid)
        watch = self._watches.get(uuid)
        if watch is None:
            watch = yield self._adopt(uuid)
        if watch.follower is None:
            self._follow(watch)

    def stop(self, uuid, timeout):
        return self._engine.stop_container(uuid, timeout)

    def kill(self, uuid, signal):
        return self._engine.kill_container(uuid, signal)

    @inlineCallbacks
    def remove(self, uuid, force):
        watch = self._watches.pop(uuid, None)
        if watch is not None and watch.follower is not None:
            watch.follower.stop()
        yield self._engine.remove_container(uuid, force)

    def resume(self, uuid, seq, cursor):
        watch = self._watches.get(uuid)
        if watch is None:
            raise commands.NoSuchContainer(uuid)
        if watch.follower is not None:
            watch.follower.stop()
        watch.seq, watch.cursor = seq, cursor
        self._follow(watch)

    # -- engine events -----------------------------------------------------

    @inlineCallbacks
    def engine_started(self, uuid, started_at):
        """
        The engine started a container (ours, or its restart policy).
        """
        watch = self._watches.get(uuid)
        if watch is None:
            return
        if watch.follower is None:
            self._follow(watch)
        try:
            yield self._call(commands.Started, uuid=uuid, started_at=started_at)
        except Exception:
            self.log.debug("could not report the start of {uuid}", uuid=uuid)

    @inlineCallbacks
    def _adopt(self, uuid):
        summary = yield self._engine.inspect(uuid)
        watch = ContainerWatch(uuid, summary["engine_id"], summary["tty"], auto_remove=summary["auto_remove"])
        self._watches[uuid] = watch
        return watch

    # -- output ------------------------------------------------------------

    def _follow(self, watch):
        uuid = watch.uuid

        def send(seq, stream, data, cursor):
            return self._call(commands.Output, uuid=uuid, seq=seq, stream=stream, data=data, cursor=cursor)

        follower = self._follower_factory(send, watch.tty, watch.seq, watch.cursor)
        watch.follower = follower
        opened = self._engine.follow_logs(watch.engine_id, watch.tty, since_param(watch.cursor), follower)
        opened.addErrback(follower.fail)
        follower.done.addCallbacks(
            self._follow_ended,
            self._follow_failed,
            callbackArgs=(watch, follower),
            errbackArgs=(watch, follower),
        )

    def _follow_failed(self, failure, watch, follower):
        if watch.follower is follower:
            watch.follower = None
        if self.link is not None:
            self.log.warn(
                "output of {uuid} interrupted: {why}", uuid=watch.uuid, why=failure.getErrorMessage()
            )

    @inlineCallbacks
    def _follow_ended(self, last_seq, watch, follower):
        """
        The engine closed the log stream: the process exited (or the stream
        broke).  Every chunk is acknowledged, so the exit can be reported.
        """
        watch.seq, watch.cursor = follower.seq, follower.cursor
        if watch.follower is follower:
            watch.follower = None
        if self._watches.get(watch.uuid) is not watch:
            return
        try:
            summary = yield self._engine.inspect(watch.uuid)
        except commands.NoSuchContainer:
            self._watches.pop(watch.uuid, None)
            return
        if summary["running"]:
            if watch.follower is None:
                self._follow(watch)
            return
        if summary["state"] not in ("exited", "dead"):
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
                yield self._engine.remove_container(watch.uuid, True)
            except commands.NoSuchContainer:
                pass
