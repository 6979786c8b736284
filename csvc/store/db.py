"""
The store: SQLAlchemy on a thread pool owned by a service, and the facade
the rest of csvc calls (``store.xxx(...)``).

The units of work live in one module per aggregate, each ``thd_*(conn,
...)`` taking and returning plain data: ``tokens`` (API and attach tokens),
``instances``, ``containers`` (placement included), ``quotas``, ``images``,
``subscriptions``; containers' output sits behind ``output.IOutputStore``
(files or rows).  Every public method here runs one unit on the store's own
thread pool and returns a Deferred of plain data (dicts, lists, bytes),
never ORM or connection objects; what a unit needs from the reactor's side
(the time, the projects' default limits) is given to it as arguments.
SQLite is given a single thread (it serialises writers anyway, and so
placement stays atomic); PostgreSQL gets several, and row locks keep
placement atomic there.
"""

import os
from datetime import datetime, timezone

from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from twisted.application.service import Service
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from csvc.store import containers as container_units
from csvc.store import images as image_units
from csvc.store import instances as instance_units
from csvc.store import models, quotas as quota_units, subscriptions as subscription_units
from csvc.store import tokens as token_units
from csvc.store.capacity import ContainerTooLarge, NoRoom
from csvc.store.containers import NameInUse
from csvc.store.output import FilesOutput, RowsOutput, thd_output_start
from csvc.store.outputfiles import CACHE_BYTES, OutputFiles
from csvc.store.quotas import QuotaExceeded
from csvc.store.tokens import hash_secret, new_secret

_HERE = os.path.dirname(os.path.abspath(__file__))


def make_engine(url):
    """
    An SQLAlchemy engine for ``url``; SQLite gets WAL and a busy timeout so
    that ``csvc-manage`` can write while the service runs.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA wal_autocheckpoint=16384")
            cursor.close()

        return engine
    return create_engine(url, pool_size=8, max_overflow=4, pool_pre_ping=True)


def upgrade(engine):
    """
    Bring the schema to the newest migration (blocking; call it off the
    reactor thread).
    """
    config = AlembicConfig(os.path.join(_HERE, "alembic.ini"))
    config.set_main_option("script_location", os.path.join(_HERE, "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        alembic_command.upgrade(config, "head")


def _utc(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


class Store(Service):
    """
    The persistent state of the control plane.
    """

    log = Logger()

    #: Seconds a stop waits for output positions still to be committed.
    stop_timeout = 5.0

    def __init__(self, engine, clock, quota_defaults=None, output_dir=None, output_cache=CACHE_BYTES,
                 output_retention=None):
        self.engine = engine
        self._clock = clock
        #: Each project's limits where its quotas row says nothing (NULL).
        self.quota_defaults = dict(quota_units.DEFAULT_LIMITS, **(quota_defaults or {}))
        #: Where output goes (``IOutputStore``): files under ``output_dir``
        #: (``output_cache``: bytes of each one's newest output left in the
        #: page cache, None: no limit), or rows of ``output_chunks`` when None.
        if output_dir:
            self.output = FilesOutput(OutputFiles(output_dir, clock, output_cache), engine, self._run, clock,
                                      self.quota_defaults, output_retention)
        else:
            self.output = RowsOutput(self._run, clock, self.quota_defaults, output_retention)
        threads = 1 if engine.dialect.name == "sqlite" else 8
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="csvc-store")

    @property
    def output_retention(self):
        """
        Bytes of output each container keeps (None: no limit), its oldest
        dropped past it (csvc/store/retention.py).
        """
        return self.output.retention

    @output_retention.setter
    def output_retention(self, value):
        self.output.retention = value

    def startService(self):
        Service.startService(self)
        self._pool.start()
        self.output.start()

    def stopService(self):
        d = self.output.flush(self.stop_timeout)

        def stop(_):
            Service.stopService(self)
            self._pool.stop()
            self.output.stop()
            self.engine.dispose()

        return d.addCallback(stop)

    def now(self):
        """
        The clock's time as the database keeps it (naive UTC).
        """
        return _utc(self._clock.seconds())

    def _run(self, thd, *args, **kwargs):
        def unit():
            with self.engine.begin() as conn:
                return thd(conn, *args, **kwargs)

        return deferToThreadPool(self._clock, self._pool, unit)

    def run_sync(self, thd, *args, **kwargs):
        """
        Run a unit of work on the calling thread (for ``csvc-manage``).
        """
        with self.engine.begin() as conn:
            return thd(conn, *args, **kwargs)

    # -- tokens (csvc.store.tokens) ------------------------------------------

    def create_token(self, project_id, user_id, is_admin=False):
        return self._run(token_units.thd_create, project_id, user_id, is_admin, self.now())

    def lookup_token(self, token):
        return self._run(token_units.thd_lookup, hash_secret(token))

    def create_attach_token(self, container_uuid, project_id, user_id, options, ttl):
        """
        A one-time token for attaching to a container, valid ``ttl`` seconds;
        only its hash is stored.  Fires with ``(token, expires_at)``.
        """
        return self._run(token_units.thd_create_attach, container_uuid, project_id, user_id, options,
                         _utc(self._clock.seconds() + ttl), self.now())

    def redeem_attach_token(self, token):
        """
        Use a one-time token: fires with its row, or None when it is unknown,
        expired or already used.  Atomic: two redeemers cannot both win.
        """
        return self._run(token_units.thd_redeem_attach, hash_secret(token), self.now())

    # -- instances (csvc.store.instances) ------------------------------------

    def create_instance(self, name, provider, capacity, shared=True, project_id=None, memory=None, cpus=None):
        """
        A new instance row, status ``pending``; fires with ``(row, enroll_token)``.
        ``project_id``: the project it is created for (only its containers go
        there); None for nobody's.  ``memory`` (MiB) and ``cpus`` (cores):
        its size as the provider made it, None when not known.
        """
        return self._run(instance_units.thd_create, name, provider, capacity, shared, project_id, memory, cpus,
                         self.now())

    def set_enroll_token(self, instance_uuid):
        """
        Issue a fresh enrollment token for an instance (the old one stops
        working); fires with the token.
        """
        return self._run(instance_units.thd_set_enroll_token, instance_uuid)

    def consume_enroll_token(self, instance_uuid, token, cert_sha256):
        """
        Use the instance's one-time enrollment token: mark it used and keep
        the SHA-256 of the certificate the agent registers with from now on.
        Fires with True, or False when the token was used already (or was
        replaced, or the instance revoked or deleted) meanwhile.
        """
        return self._run(instance_units.thd_consume_enroll_token, instance_uuid, hash_secret(token), cert_sha256,
                         self.now())

    def replace_agent_cert(self, instance_uuid, old_sha256, new_sha256):
        """
        An enrolled agent renewed its certificate: the new one replaces the
        old one (which stops working).  Fires with True, or False when the
        old one was not the instance's (any more).
        """
        return self._run(instance_units.thd_replace_agent_cert, instance_uuid, old_sha256, new_sha256)

    def instance_by_token(self, token):
        return self._run(instance_units.thd_by_token, hash_secret(token))

    def update_instance(self, instance_uuid, **values):
        """
        Fires with True when the instance was updated (never a revoked or
        deleted one); ``last_seen_at=None`` means now.
        """
        if "last_seen_at" in values and values["last_seen_at"] is None:
            values["last_seen_at"] = self.now()
        return self._run(instance_units.thd_update, instance_uuid, values)

    def touch_instance(self, instance_uuid):
        return self.update_instance(instance_uuid, last_seen_at=None)

    def list_instances(self, provider=None):
        return self._run(instance_units.thd_list, provider)

    def get_instance(self, ident):
        """
        An instance by uuid or name, or None.
        """
        return self._run(instance_units.thd_get, ident)

    def register_instance(self, name, capacity, shared=True, project_id=None):
        """
        An operator's host, enrolled through the API: fires with ``(row,
        enroll_token)``; ValueError when the name is taken.
        """
        return self._run(instance_units.thd_register_owned, name, capacity, shared, project_id, self.now())

    def mark_instance_deleted(self, instance_uuid):
        """
        The instance was removed through its provider: status ``deleted``
        (final), its enrollment token dead.  The row stays for the record.
        """
        return self._run(instance_units.thd_mark_deleted, instance_uuid)

    def stale_instances(self, seen_before):
        """
        Instances (pending, active or down) whose agent was last heard of
        before ``seen_before`` (Unix seconds), or never and created before
        it, with how many live containers each still has (``live``).
        """
        return self._run(instance_units.thd_stale, _utc(seen_before))

    def mark_instance_down(self, instance_uuid, reason, from_states, to_state):
        """
        The instance's agent is gone: an active instance becomes ``down``
        (a draining one stays draining) and every container on it in one of
        ``from_states`` becomes ``to_state`` with ``reason`` (the life
        cycle's ``instance_down``, csvc.compute.lifecycle).  Fires with the
        uuids of those containers.
        """
        return self._run(instance_units.thd_mark_down, instance_uuid, reason, tuple(from_states), to_state)

    # -- containers (csvc.store.containers) ----------------------------------

    def place_container(self, values, instance_uuid=None):
        """
        Insert a container row on an instance with room, atomically: the named
        instance, else the first active instance in creation order where it
        fits (``csvc.store.capacity``: fewer containers than its capacity,
        and the memory and cpu of its live containers plus this one's within
        its size).  Fires with the row; fails with ``NoRoom``
        (``ContainerTooLarge`` when no instance could ever hold it),
        ``NameInUse`` or ``QuotaExceeded`` (the project's quota is checked,
        and on PostgreSQL locked, in the same transaction).
        """
        return self._run(container_units.thd_place, values, instance_uuid, self.quota_defaults, self.now())

    def get_container(self, ident, project_id=None):
        """
        A container by uuid or name, within ``project_id`` unless it is None.
        """
        return self._run(container_units.thd_get, ident, project_id)

    def list_containers(self, project_id=None, instance_uuid=None):
        return self._run(container_units.thd_list, project_id, instance_uuid)

    def update_container(self, container_uuid, expect_status=None, **values):
        """
        Update a container's row; with ``expect_status`` (a status or a tuple
        of them) only when its status is one of them.  Fires with the new row,
        or None when nothing matched.
        """
        return self._run(container_units.thd_update, container_uuid, expect_status, values)

    def update_container_resources(self, container_uuid, host_update, memory=None, cpu=None):
        """
        Merge ``host_update`` into a container's ``docker_config``
        HostConfig and give it new ``memory`` (MiB) and ``cpu`` (None:
        unchanged), within its project's quota (``QuotaExceeded`` otherwise;
        checked, and on PostgreSQL locked, in the same transaction, where the
        merge reads the row too: concurrent updates do not lose each other).
        Fires with the ``(before, after)`` rows, None when it is gone.
        """
        return self._run(container_units.thd_update_resources, container_uuid, host_update, memory, cpu,
                         self.quota_defaults)

    def restore_container_resources(self, container_uuid, before, after):
        """
        Put back ``before``'s ``docker_config``, ``memory`` and ``cpu`` if
        the container still has ``after``'s (nothing changed them since);
        fires with whether it did.
        """
        return self._run(container_units.thd_restore_resources, container_uuid, before, after)

    def rename_container(self, container_uuid, name):
        """
        Give a container a new name, unique within its project; fires with
        the new row (None when it is gone), fails with ``NameInUse``.
        """
        return self._run(container_units.thd_rename, container_uuid, name)

    def delete_container(self, container_uuid):
        d = self._run(container_units.thd_delete, container_uuid)
        return d.addCallback(lambda _: self.output.deleted(container_uuid))

    # -- output (csvc.store.output) ------------------------------------------

    def append_output(self, chunks):
        """
        ``IOutputStore.append``: persist ``chunks``, a list of ``(uuid, seq,
        stream, data, cursor)`` in seq order per container; an ``Appended``
        whose ``written`` fires once they may be acknowledged, ``committed``
        once their positions are committed too.
        """
        return self.output.append(chunks)

    def hasten_output(self):
        """
        ``IOutputStore.hasten``: commit the positions of written output now.
        """
        self.output.hasten()

    def output_start(self, container_uuid):
        """
        ``(first, dropped)``: the first chunk the container keeps, and how
        many bytes before it the retention dropped; None when it is gone.
        """
        return self._run(thd_output_start, container_uuid)

    def read_output(self, container_uuid, after_seq=0, limit=64, before_seq=None, descending=False,
                    with_time=False):
        """
        Up to ``limit`` chunks ``(seq, stream, data)`` of a container with
        ``after_seq < seq`` (and ``seq < before_seq``), in seq order (or
        reverse order with ``descending``); ``with_time`` adds when each
        arrived, ``(seq, stream, data, at)``.
        """
        return self.output.read(container_uuid, after_seq, limit, before_seq, descending, with_time)

    def prepare_output(self):
        """
        At start, before the reactor runs (blocking): ``IOutputStore.prepare``
        (files: output stored as rows moved into them, then the files and the
        database's positions lined up).
        """
        self.output.prepare()

    # -- notification subscriptions (csvc.store.subscriptions) ---------------

    def create_subscription(self, project_id, url, event_types, limit):
        """
        A project's webhook; fires with its row, or fails with
        ``QuotaExceeded`` when the project has ``limit`` already.
        """
        return self._run(subscription_units.thd_create, project_id, url, event_types, self.now(), limit)

    def list_subscriptions(self, project_id=None):
        return self._run(subscription_units.thd_list, project_id)

    def delete_subscription(self, subscription_uuid, project_id=None):
        """
        Fires with the deleted row, or None when there was none (in the project).
        """
        return self._run(subscription_units.thd_delete, subscription_uuid, project_id)

    # -- images projects pulled (csvc.store.images) --------------------------

    def image_pull_started(self, project_id, instance_uuid, reference):
        return self._run(image_units.thd_pull_started, project_id, instance_uuid, reference, self.now())

    def image_pull_ended(self, project_id, instance_uuid, reference, image_id):
        return self._run(image_units.thd_pull_ended, project_id, instance_uuid, reference, image_id, self.now())

    def image_claims(self, image_ids):
        return self._run(image_units.thd_claims, image_ids)

    # -- quotas (csvc.store.quotas) ------------------------------------------

    def get_quota(self, project_id):
        """
        A project's limits in effect: ``{"containers", "memory", "cpu",
        "attach_sessions", "networks"}``, -1 for unlimited.
        """
        return self._run(quota_units.thd_limits, project_id, self.quota_defaults)

    def set_quota(self, project_id, values):
        """
        Set some of a project's limits (a None value restores the default);
        fires with the limits in effect.
        """
        return self._run(quota_units.thd_set_limits, project_id, values, self.quota_defaults)

    def reset_quota(self, project_id):
        return self._run(quota_units.thd_reset_limits, project_id)

    def quota_usage(self, project_id):
        """
        ``(limits, usage)``: what a project may and does use in containers,
        memory and cpu (attach sessions are the relay's to count, networks
        the engine's).
        """
        return self._run(quota_units.thd_limits_and_usage, project_id, self.quota_defaults)


__all__ = [
    "Store", "NameInUse", "NoRoom", "ContainerTooLarge", "QuotaExceeded", "make_engine", "upgrade", "hash_secret",
    "new_secret", "models",
]
