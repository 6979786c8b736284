"""
What the API asks of containers, carried out: placement, the calls to the
instance's agent, and the state recorded in the store.  The API checks who
may ask; this checks what the state allows (``states.py``).
"""

import uuid as uuidlib
from datetime import datetime, timezone

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from zope.interface import implementer

from csvc.wire import commands
from csvc import policy
from csvc.compute.defaults import Confinement, confine
from csvc.compute import states
from csvc.compute.execs import ContainerExecs
from csvc.compute.lifecycle import Lifecycle, marked_down
from csvc.compute.transfers import ContainerTransfers
from csvc.notify import events as notices
from csvc.notify.notifier import NullNotifier
from csvc.agents.hub import InstanceUnavailable, LinkLostDuringCall
from csvc.agents import transfers
from csvc.agents.events import IContainerEvents


class NotFound(Exception):
    pass


class ImageNotFound(Exception):
    pass


def _parse_engine_time(value, fallback):
    """
    Docker's RFC 3339 time (nanoseconds, 'Z') as a naive UTC datetime.
    """
    if not value or value.startswith("0001-"):
        return fallback
    try:
        base = value.rstrip("Z")
        if "." in base:
            head, frac = base.split(".", 1)
            base = f"{head}.{frac[:6]}"
        return datetime.fromisoformat(base)
    except ValueError:
        return fallback


#: Engine signals by the names the API accepts (with or without SIG).
SIGNALS = {
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
}


def normalize_signal(signal):
    """
    ``SIGTERM``/``TERM``/``15`` -> the engine's spelling; ValueError otherwise.
    """
    text = str(signal).strip().upper()
    if text.isdigit():
        if 1 <= int(text) <= 64:
            return text
        raise ValueError(f"signal number {text} is out of range 1-64")
    if text.startswith("SIG"):
        text = text[3:]
    if text not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}")
    return "SIG" + text


_WILDCARD_V4 = ("", "0.0.0.0")


def at_address(bindings, address):
    """
    One container port's engine bindings as a client reaches them: the
    wildcard host addresses replaced by the instance's ``address`` (None:
    left as they are), duplicates dropped.  Docker binds a published port
    on 0.0.0.0 and on :: and may give the two different host ports; at an
    IPv4 address only the 0.0.0.0 one is the port to use (and at an IPv6
    address the :: one), so the other family's wildcard goes when both are
    there.
    """
    if address:
        mine, other = (("::",), _WILDCARD_V4) if ":" in address else (_WILDCARD_V4, ("::",))
        if any((b.get("HostIp") or "") in mine for b in bindings):
            bindings = [b for b in bindings if (b.get("HostIp") or "") not in other]
    seen = []
    for binding in bindings:
        host_ip = binding.get("HostIp") or ""
        if host_ip in _WILDCARD_V4 + ("::",) and address:
            host_ip = address
        entry = {"HostIp": host_ip, "HostPort": str(binding.get("HostPort") or "")}
        if entry not in seen:
            seen.append(entry)
    return seen


@implementer(IContainerEvents)
class ContainerService(ContainerExecs, ContainerTransfers):
    """
    Containers' life cycle as the APIs ask for it, and as agents report it
    (the ``IContainerEvents`` every agent link is given).
    """

    log = Logger()

    #: How long stop/kill/restart wait for the exit to be recorded after the
    #: engine has acted.
    settle_timeout = 30.0

    #: How long a delete waits for the agent of an instance that is not
    #: connected (agents reconnect within seconds of a restart) before it
    #: leaves the engine's removal to the agent's next registration.
    reconnect_wait = 5.0

    def __init__(self, store, journal, hub, clock, notifier=None, placement=None, stop_timeout_max=600,
                 exec_output_max=None, confinement=Confinement(), images=None):
        self._store = store
        self._journal = journal
        self._hub = hub
        self._clock = clock
        #: the longest grace a stop or restart gives (the engine then kills):
        #: a tenant's ``t`` beyond it is clamped, not refused (clients such as
        #: Compose pass long ones and expect the stop to work)
        self.stop_timeout_max = stop_timeout_max
        #: bytes a non-interactive exec's answer collects (None: CollectedOutput's)
        self.exec_output_max = exec_output_max
        #: the operator's safe defaults, applied to every create (csvc.compute.defaults)
        self.confinement = confinement
        #: which images a project may run (``csvc.compute.images``); None:
        #: any image on the instance
        self.images = images
        # Notifications (csvc.notify): emitting never blocks nor fails.
        self._notifier = notifier if notifier is not None else NullNotifier()
        #: the one writer of the containers' status (``csvc.compute.lifecycle``)
        self.lifecycle = Lifecycle(store, journal, self._notifier)
        # uuid -> Deferred of a start still on its way to the engine: the
        # store says "running" from the moment it is asked for.
        self._starting = {}
        if placement is None:
            from csvc.scheduler.placement import Placement

            # A fixed set of instances: no provider to ask for more.
            placement = Placement(store, hub, None, clock)
        #: where containers go (``csvc.scheduler.placement``)
        self.placement = placement
        self._downloads = transfers.Downloads(hub)

    def _now(self):
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc).replace(tzinfo=None)

    # -- reading -----------------------------------------------------------

    @inlineCallbacks
    def get(self, identity, ident, all_projects=False):
        project = None if identity.is_admin and all_projects else identity.project_id
        row = yield self._store.get_container(ident, project)
        if row is None:
            raise NotFound(f"container {ident} not found")
        policy.enforce("container:get", identity, row["project_id"])
        return row

    def connected_instances(self):
        """
        The uuids of the instances whose agents are connected now.
        """
        return self._hub.connected_instances()

    def list(self, identity, all_projects=False):
        project = None if (identity.is_admin and all_projects) else identity.project_id
        return self._store.list_containers(project_id=project)

    # -- create ------------------------------------------------------------

    @inlineCallbacks
    def create(self, identity, spec):
        """
        Place and create a container on its instance's engine; start it in
        the background when ``run`` is set.  Fires with the stored row.
        """
        spec = confine(spec, self.confinement, admin=identity.is_admin)
        container_uuid = str(uuidlib.uuid4())
        values = dict(
            uuid=container_uuid,
            name=spec.get("name") or f"csvc-{container_uuid[:8]}",
            project_id=identity.project_id,
            user_id=identity.user_id,
            image=_normalize_image(spec["image"]),
            command=spec.get("command"),
            environment=spec.get("environment") or {},
            workdir=spec.get("workdir"),
            labels=spec.get("labels") or {},
            tty=bool(spec.get("tty", False)),
            interactive=bool(spec.get("interactive", False)),
            memory=spec.get("memory"),
            cpu=spec.get("cpu"),
            # With remove_on_exit the service removes engine container and
            # record together; the agent must not race it to the engine.
            auto_remove=bool(spec.get("auto_remove", False)) and not spec.get("remove_on_exit"),
            entrypoint=spec.get("entrypoint"),
            stdin_once=spec.get("stdin_once"),
            remove_on_exit=bool(spec.get("remove_on_exit", False)),
            # Docker's honoured create options (csvc.api.docker_options).
            docker_config=spec.get("docker_config"),
            status=states.INITIAL,
        )
        self._notifier.container(notices.CONTAINER_CREATE_START, values)
        try:
            row = yield self.placement.place(values, spec.get("instance"))
        except Exception as exc:
            self._notifier.container_failed(notices.CONTAINER_CREATE_ERROR, values, _reason(exc))
            raise
        instance = row["instance_uuid"]
        self._hub.assign(container_uuid, instance)
        if self.images is not None:
            try:
                yield self.images.check_use(identity, instance, values["image"])
            except Exception as exc:
                yield self._discard(container_uuid)
                self._notifier.container_failed(
                    notices.CONTAINER_CREATE_ERROR, row,
                    "no such image" if isinstance(exc, ImageNotFound) else _reason(exc),
                )
                raise
        engine_spec = {k: v for k, v in row.items() if not isinstance(v, datetime)}
        # The agent's wall lets an admin's container have what policy let it.
        engine_spec["admin"] = bool(identity.is_admin)
        try:
            result = yield self._hub.call(instance, commands.CreateContainer, spec=engine_spec)
        except commands.NoSuchImage:
            yield self._discard(container_uuid)
            self._notifier.container_failed(notices.CONTAINER_CREATE_ERROR, row, "no such image")
            raise ImageNotFound(f"image '{values['image']}' is not available on the instance") from None
        except commands.Refused as exc:
            yield self._discard(container_uuid)
            self._notifier.container_failed(notices.CONTAINER_CREATE_ERROR, row, "refused by the instance's agent")
            raise self._refused("create", row, exc) from None
        except LinkLostDuringCall as exc:
            # The engine may hold the container: it goes when the agent
            # registers again, as a delete made while it was away (whose
            # delete.end follows this delete.start).
            self._notifier.container_failed(notices.CONTAINER_CREATE_ERROR, row, _reason(exc))
            self._notifier.container(notices.CONTAINER_DELETE_START, row, force=True)
            yield self._mark_deleting(row, f"the create was interrupted: {exc}")
            raise
        except Exception as exc:
            yield self._discard(container_uuid)
            self._notifier.container_failed(notices.CONTAINER_CREATE_ERROR, row, _reason(exc))
            raise
        row = yield self.lifecycle.transition(container_uuid, "created", engine_id=result["engine_id"])
        if row is None:
            raise NotFound(f"container {container_uuid} was deleted while it was created")
        if spec.get("run"):
            d = self.start(row)
            d.addErrback(self._background_failure, container_uuid, "start")
        return row

    def _refused(self, action, row, exc):
        """
        The instance's agent refused ``action`` on ``row``'s container (its
        wall: what no member may have): logged, and the 403 naming the rule.
        """
        self.log.warn(
            "the agent of instance {instance} refused the {action} of container {uuid}: {why}",
            instance=row["instance_uuid"], action=action, uuid=row["uuid"], why=str(exc),
        )
        return policy.Forbidden(f"the instance's agent refused the {action}: {exc}")

    def _background_failure(self, failure, container_uuid, action):
        self.log.error(
            "{action} of {uuid} failed: {why}", action=action, uuid=container_uuid, why=failure.getErrorMessage()
        )

    @inlineCallbacks
    def _discard(self, container_uuid):
        self._hub.unassign(container_uuid)
        yield self._store.delete_container(container_uuid)

    # -- actions -----------------------------------------------------------

    @inlineCallbacks
    def start(self, row):
        states.check("start", row["status"])
        previous = row["status"]
        updated = yield self.lifecycle.transition(
            row["uuid"],
            "start_requested",
            # Told once the engine has started it.
            announce=False,
            status_reason=None,
            started_at=self._now(),
            exit_code=None,
            finished_at=None,
        )
        if updated is None:
            current = yield self._store.get_container(row["uuid"])
            raise states.InvalidState("start", current["status"] if current else "deleted")
        starting = Deferred()
        self._starting[row["uuid"]] = starting
        try:
            yield self._hub.call(row["instance_uuid"], commands.StartContainer, uuid=row["uuid"])
        except Exception as exc:
            reason = _reason(exc)
            yield self.lifecycle.transition(
                row["uuid"], states.start_failed(previous), status_reason=f"start failed: {reason}"
            )
            self._notifier.container_failed(notices.CONTAINER_START_ERROR, row, reason)
            raise
        finally:
            if self._starting.get(row["uuid"]) is starting:
                del self._starting[row["uuid"]]
            starting.callback(None)
        self.lifecycle.announce("start_requested", updated)
        return updated

    @inlineCallbacks
    def _started(self, row):
        """
        The container's row once any start still on its way to the engine
        has landed (an action on a container that is "running" but not yet
        started by the engine would be refused by it).
        """
        starting = self._starting.get(row["uuid"])
        if starting is None:
            return row
        waiter = Deferred()
        starting.addBoth(lambda result: (waiter.callback(None), result)[1])
        yield waiter
        current = yield self._store.get_container(row["uuid"])
        if current is None:
            raise NotFound(f"container {row['uuid']} was deleted")
        return current

    def _stop_timeout(self, row, timeout):
        timeout = max(0, int(timeout))
        if timeout > self.stop_timeout_max:
            self.log.info("stop of {uuid}: t={asked} clamped to {limit} s (stop-timeout-max)", uuid=row["uuid"],
                          asked=timeout, limit=self.stop_timeout_max)
            timeout = self.stop_timeout_max
        return timeout

    @inlineCallbacks
    def stop(self, row, timeout=10):
        timeout = self._stop_timeout(row, timeout)
        row = yield self._started(row)
        states.check("stop", row["status"])
        yield self._hub.call(row["instance_uuid"], commands.StopContainer, uuid=row["uuid"], timeout=timeout)
        return self._stopped((yield self._settled(row["uuid"])), "stop")

    def _stopped(self, row, action, signal=None):
        """
        ``compute.container.stop`` when a stop or kill ended the run (the
        exit itself is ``compute.container.exit``, from ``on_exited``).
        """
        if row is not None and row["status"] not in states.LIVE:
            extra = {"action": action} if signal is None else {"action": action, "signal": signal}
            self._notifier.container(notices.CONTAINER_STOP, row, **extra)
        return row

    @inlineCallbacks
    def kill(self, row, signal="SIGKILL"):
        row = yield self._started(row)
        states.check("kill", row["status"])
        yield self._hub.call(row["instance_uuid"], commands.KillContainer, uuid=row["uuid"], signal=signal)
        if signal in ("SIGKILL", "9"):
            return self._stopped((yield self._settled(row["uuid"])), "kill", signal)
        return self._stopped((yield self._store.get_container(row["uuid"])), "kill", signal)

    @inlineCallbacks
    def restart(self, row, timeout=10):
        states.check("restart", row["status"])
        if states.may("stop", row["status"]):
            row = yield self.stop(row, timeout)
        return (yield self.start(row))

    @inlineCallbacks
    def delete(self, row, force=False, instance_going=False, volumes=False):
        """
        Remove the container from its instance's engine, then its row, its
        stored output and its place.  Fires with None once it is gone.

        When the instance's agent is not connected (a control plane or an
        agent restarting), the delete waits up to ``reconnect_wait`` seconds
        for it; after that the row becomes ``deleting`` and the delete fires
        with it: the removal is finished when the agent registers again
        (``finish_deletions``), so the engine's container is never left
        behind unknown.  Only an instance that is gone for good (deleted,
        revoked, or ``instance_going``: being removed by the caller) lets
        the row go without its engine being told.

        ``volumes``: the container's anonymous volumes go too (``docker rm
        -v``); not when the removal waits for the agent (they stay, listed
        and prunable).
        """
        row = yield self._started(row)
        if not (instance_going and states.may("finish_delete", row["status"])):
            states.check("force_delete" if force else "delete", row["status"])
        self._notifier.container(notices.CONTAINER_DELETE_START, row, force=bool(force))
        connected = self._hub.is_connected(row["instance_uuid"])
        instance = None
        if not (instance_going or connected):
            # An agent that may come back is worth a short wait.
            instance = yield self._instance_that_may_return(row["instance_uuid"])
        try:
            yield self._remove_from_engine(row, self.reconnect_wait if instance is not None else 0, volumes)
        except InstanceUnavailable:
            if connected and not instance_going:
                # The link broke during the call.
                instance = yield self._instance_that_may_return(row["instance_uuid"])
            if instance is not None:
                return (yield self._mark_deleting(row, f"instance {instance['name']} is not connected"))
        yield self._forget(row, force=bool(force))
        return None

    @inlineCallbacks
    def _remove_from_engine(self, row, patience=0, volumes=False):
        try:
            yield self._hub.call_waiting(
                row["instance_uuid"], patience, commands.RemoveContainer, uuid=row["uuid"], force=True,
                volumes=bool(volumes),
            )
        except commands.NoSuchContainer:
            pass

    @inlineCallbacks
    def _instance_that_may_return(self, instance_uuid):
        """
        The instance's row if it still exists, so that its agent may connect
        again; None for one never placed on, deleted or revoked.
        """
        if instance_uuid is None:
            return None
        instance = yield self._store.get_instance(instance_uuid)
        if instance is None or instance["status"] in ("deleted", "revoked"):
            return None
        return instance

    @inlineCallbacks
    def _mark_deleting(self, row, why):
        """
        Leave the container's removal from its engine to its agent's next
        registration (``finish_deletions``).  Fires with the row as it is
        then: ``deleting``, or None once gone.
        """
        updated = yield self.lifecycle.transition(
            row["uuid"],
            "delete_deferred",
            status_reason=f"deleting: {why}; its agent removes the container from the engine when it connects again",
        )
        if updated is None:
            # Deleted meanwhile by someone else (None), or already deleting.
            return (yield self._store.get_container(row["uuid"]))
        self.log.warn("container {uuid} left deleting: {why}", uuid=row["uuid"], why=why)
        if row["instance_uuid"] in self._hub.connected_instances():
            # The agent registered while the row was being marked: its
            # registration may have listed the row before it was deleting.
            yield self.finish_deletions([updated])
            return (yield self._store.get_container(row["uuid"]))
        return updated

    @inlineCallbacks
    def finish_deletions(self, rows):
        """
        The ``deleting`` containers of an instance whose agent has just
        registered: removed from its engine, then forgotten.  One that the
        engine fails to remove stays ``deleting`` (logged) for the next
        registration.
        """
        for row in rows:
            try:
                yield self._remove_from_engine(row)
            except Exception as exc:
                self.log.warn("removing deleting container {uuid} failed: {why}", uuid=row["uuid"], why=_reason(exc))
                continue
            current = yield self._store.get_container(row["uuid"])
            if current is not None and states.may("finish_delete", current["status"]):
                yield self._forget(current, deferred=True)

    @inlineCallbacks
    def _forget(self, row, **extra):
        yield self._store.delete_container(row["uuid"])
        self._hub.unassign(row["uuid"])
        self._journal.forget(row["uuid"])
        self._notifier.container(notices.CONTAINER_DELETE_END, dict(row, status="deleted"), **extra)

    @inlineCallbacks
    def wait(self, row):
        """
        Fires with the row once the container is no longer live.
        """
        container_uuid = row["uuid"]
        while True:
            waiter = self._journal.wait_state(container_uuid)
            row = yield self._store.get_container(container_uuid)
            if row is None or row["status"] not in states.LIVE:
                self._journal.cancel_wait(container_uuid, waiter)
                if row is None:
                    raise NotFound(f"container {container_uuid} was deleted while waited on")
                return row
            yield waiter

    @inlineCallbacks
    def _settled(self, container_uuid):
        """
        Wait (bounded) until the container's exit is recorded.
        """
        deadline = self._clock.seconds() + self.settle_timeout
        while True:
            waiter = self._journal.wait_state(container_uuid)
            row = yield self._store.get_container(container_uuid)
            if row is None or not states.may("stop", row["status"]) or self._clock.seconds() >= deadline:
                self._journal.cancel_wait(container_uuid, waiter)
                return row
            timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), waiter.callback, None)
            yield waiter
            if timer.active():
                timer.cancel()
            else:
                self._journal.cancel_wait(container_uuid, waiter)

    @inlineCallbacks
    def health(self, row):
        """
        The container's health as its engine tracks it (Docker's
        ``State.Health``), or None.
        """
        result = yield self._hub.call(row["instance_uuid"], commands.ContainerHealth, uuid=row["uuid"])
        return result["health"]

    @inlineCallbacks
    def pause(self, row, paused=True):
        """
        Freeze (or thaw) a running container's processes on its engine; the
        store's status stays "running" (Docker's paused is a running
        container whose processes are frozen).
        """
        row = yield self._started(row)
        states.check("pause" if paused else "unpause", row["status"])
        yield self._hub.call(row["instance_uuid"], commands.PauseContainer, uuid=row["uuid"], paused=paused)
        return row

    @inlineCallbacks
    def paused(self, row):
        """
        Whether the engine has the (running) container paused.
        """
        if not states.may("pause", row["status"]):
            return False
        result = yield self._hub.call(row["instance_uuid"], commands.ContainerPaused, uuid=row["uuid"])
        return result["paused"]

    @inlineCallbacks
    def rename(self, row, name):
        """
        A new name, unique in the project (``NameInUse``); the engine's name
        (``csvc-<uuid>``) does not change.
        """
        updated = yield self._store.rename_container(row["uuid"], name)
        if updated is None:
            raise NotFound(f"container {row['uuid']} was deleted")
        self._journal.state_changed(row["uuid"])
        return updated

    @inlineCallbacks
    def top(self, row, ps_args=""):
        row = yield self._started(row)
        states.check("top", row["status"])
        result = yield self._hub.call(row["instance_uuid"], commands.ContainerTop, uuid=row["uuid"], ps_args=ps_args)
        return result["top"]

    @inlineCallbacks
    def stats(self, row):
        result = yield self._hub.call(row["instance_uuid"], commands.ContainerStats, uuid=row["uuid"])
        return result["stats"]

    @inlineCallbacks
    def update(self, row, host_update, memory=None, cpu=None):
        """
        Change a container's resources and restart policy: ``host_update``
        (validated HostConfig fields) merged into its ``docker_config``,
        ``memory`` (MiB) and ``cpu`` the new values counted against the
        project's quota (None: unchanged).  The store takes it first (within
        the quota), then the engine; an engine that refuses puts the record
        back (unless another update changed it meanwhile).  Fires with
        ``(row, warnings)``.
        """
        changed = yield self._store.update_container_resources(row["uuid"], host_update, memory, cpu)
        if changed is None:
            raise NotFound(f"container {row['uuid']} was deleted")
        before, after = changed
        try:
            result = yield self._hub.call(row["instance_uuid"], commands.UpdateContainer, uuid=row["uuid"],
                                          update=host_update)
        except Exception as exc:
            yield self._store.restore_container_resources(row["uuid"], before, after)
            if isinstance(exc, commands.Refused):
                raise self._refused("update", row, exc) from None
            raise
        return after, result["warnings"]

    @inlineCallbacks
    def sizes(self, project_id, instance_uuid):
        """
        ``{uuid: [SizeRw, SizeRootFs]}`` of the project's containers on one
        instance, as its engine measures them.
        """
        result = yield self._hub.call(instance_uuid, commands.ContainerSizes, project_id=project_id)
        return result["sizes"]

    @inlineCallbacks
    def published_ports(self, row):
        """
        The container's published ports as its engine has them, wildcard
        host addresses replaced by the instance's address.
        """
        result = yield self._hub.call(row["instance_uuid"], commands.ContainerPorts, uuid=row["uuid"])
        address = self._hub.address_of(row["instance_uuid"])
        return {port: at_address(bindings or [], address) for port, bindings in result["ports"].items()}

    # -- events from agents ------------------------------------------------

    @inlineCallbacks
    def on_started(self, container_uuid):
        # Started by the engine, not through ``start`` (which has set
        # "running" before it asks): a restart policy, say.
        yield self.lifecycle.transition(
            container_uuid, "agent_started", started_at=self._now(), exit_code=None, finished_at=None,
        )

    @inlineCallbacks
    def on_exited(self, container_uuid, exit_code, last_seq, finished_at):
        yield self._journal.reached(container_uuid, last_seq, committed=True)
        # The exit is told before waiters wake (a stop tells it ended the run).
        row = yield self.lifecycle.transition(
            container_uuid, "exited", exit_code=exit_code, finished_at=_parse_engine_time(finished_at, self._now()),
        )
        if row is not None:
            if row["remove_on_exit"]:
                # Docker's --rm: the container goes once its exit is known.
                # Viewers already woken read the exit before the row goes.
                self._clock.callLater(0, self._remove_after_exit, row)

    @inlineCallbacks
    def on_vanished(self, container_uuid, instance_name, seen, exit_code, last_seq):
        """
        The container was removed from its instance's engine by something
        other than the service: it becomes ``error`` with a reason that says
        so; its exit code is recorded when the engine told it (and none was
        recorded yet).  Its stored output stays.
        """
        yield self._journal.reached(container_uuid, last_seq)
        row = yield self._store.get_container(container_uuid)
        if row is None or not states.happens("vanished", row["status"]):
            return
        how = "the engine's destroy event" if seen == "destroy" else "the engine no longer knows it"
        reason = (
            f"the container was removed from the engine of instance {instance_name} by something other than "
            f"csvc ({how})"
        )
        values = {}
        if exit_code >= 0 and row["exit_code"] is None:
            values["exit_code"] = exit_code
        known = values.get("exit_code", row["exit_code"])
        if known is not None:
            reason += f"; its process had exited with {known}"
        values["status_reason"] = reason
        if row["finished_at"] is None:
            values["finished_at"] = self._now()
        row = yield self.lifecycle.transition(container_uuid, "vanished", **values)
        if row is not None:
            self.log.warn("{reason} ({uuid})", reason=reason, uuid=container_uuid)

    def on_found(self, row, engine_state):
        """
        Its agent registered again and the engine still has the container:
        one marked ``error`` only because its instance was down is back,
        ``created`` or ``running`` as the engine has it (an exit while its
        agent was away follows with the resumed output).  Fires with the new
        row, or None when nothing changed.
        """
        if not marked_down(row):
            return succeed(None)
        event = "agent_found_created" if engine_state == "created" else "agent_found_running"
        return self.lifecycle.transition(row["uuid"], event, status_reason=None)

    def on_missing(self, row, instance_name):
        """
        Its agent registered again and the engine no longer has the
        container: a created or running one becomes ``error``.  Fires with
        the new row, or None when nothing changed.
        """
        if not states.happens("missing_at_registration", row["status"]):
            return succeed(None)
        return self.lifecycle.transition(
            row["uuid"], "missing_at_registration",
            status_reason=f"the container vanished from the engine of instance {instance_name}",
        )

    @inlineCallbacks
    def _remove_after_exit(self, row):
        try:
            # As Docker's --rm: its anonymous volumes go with it.
            yield self.delete(row, force=True, volumes=True)
        except Exception as exc:
            self.log.warn("removing {uuid} after its exit failed: {why}", uuid=row["uuid"], why=_reason(exc))


def _normalize_image(image):
    """
    ``busybox`` -> ``busybox:latest``, as the engine resolves it.
    """
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


def _reason(exc):
    return str(exc) or exc.__class__.__name__
