"""
The store: SQLAlchemy on a thread pool owned by a service.

Every public method runs one unit of work, a ``_thd_*(conn, ...)`` function,
on the store's own thread pool and returns a Deferred of plain data (dicts,
lists, bytes), never ORM or connection objects.  SQLite is given a single
thread (it serialises writers anyway, and so placement stays atomic);
PostgreSQL gets several, and row locks keep placement atomic there.
"""

import hashlib
import os
import secrets
import uuid as uuidlib
from datetime import datetime, timezone

from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from sqlalchemy import and_, bindparam, create_engine, event, func, or_, select
from sqlalchemy.exc import IntegrityError
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from csvc.store import capacity, models, quotas as quota_units, retention, subscriptions as subscription_units
from csvc.store import images as image_units
from csvc.store.capacity import ContainerTooLarge, NoRoom
from csvc.store.models import attach_tokens, containers, instances, output_chunks, tokens
from csvc.store.outputfiles import CACHE_BYTES, OutputFiles, StoredFiles
from csvc.store.quotas import QuotaExceeded

_HERE = os.path.dirname(os.path.abspath(__file__))


class NameInUse(Exception):
    """
    The project already has a container of this name.
    """


def hash_secret(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret():
    return secrets.token_urlsafe(32)


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


def _row(row):
    return dict(row._mapping) if row is not None else None


class Store(Service):
    """
    The persistent state of the control plane.
    """

    log = Logger()

    #: Seconds between two commits of output positions (unless someone
    #: waits for one: an exit to record, an agent registering).
    positions_interval = 0.1

    def __init__(self, engine, clock, quota_defaults=None, output_dir=None, output_cache=CACHE_BYTES,
                 output_retention=None):
        self.engine = engine
        self._clock = clock
        #: Where output bytes go: files under ``output_dir`` (see
        #: csvc/store/outputfiles.py), or rows of ``output_chunks`` when None;
        #: ``output_cache``: bytes of each one's newest output left in the
        #: page cache (None: no limit).
        self.output = OutputFiles(output_dir, clock, output_cache) if output_dir else None
        #: Bytes of output each container keeps (None: no limit), its
        #: oldest dropped past it (csvc/store/retention.py).
        self.output_retention = output_retention
        self._stored = StoredFiles(self.output) if self.output is not None else retention.StoredRows()
        # Output positions written to files and waiting for their commit:
        # uuid -> (seq, cursor); one commit in flight at a time.
        self._positions = {}
        self._positions_inflight = {}
        self._positions_waiters = {}
        self._positions_retry = None
        self._positions_last = 0.0
        #: Each project's limits where its quotas row says nothing (NULL).
        self.quota_defaults = dict(quota_units.DEFAULT_LIMITS, **(quota_defaults or {}))
        threads = 1 if engine.dialect.name == "sqlite" else 8
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="csvc-store")

    def startService(self):
        Service.startService(self)
        self._pool.start()
        if self.output is not None:
            self.output.start()

    #: Seconds a stop waits for output positions still to be committed.
    stop_timeout = 5.0

    def stopService(self):
        # Output written but whose position is not committed yet: commit it
        # now (a clean stop then needs no replay at the next start), but do
        # not wait for ever on a database that is gone.
        waiting = set(self._positions) | set(self._positions_inflight)
        if waiting and self.running:
            d = gatherResults([self.output_committed(u) for u in waiting])
            d.addTimeout(self.stop_timeout, self._clock)
            d.addErrback(lambda f: self.log.failure(
                "output positions of {n} containers not committed at stop (the agents send the rest again)",
                f, n=len(waiting)))
        else:
            d = succeed(None)

        def stop(_):
            Service.stopService(self)
            self._pool.stop()
            if self._positions_retry is not None and self._positions_retry.active():
                self._positions_retry.cancel()
            if self.output is not None:
                self.output.stop()
            self.engine.dispose()

        return d.addCallback(stop)

    def _now(self):
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

    # -- tokens ------------------------------------------------------------

    def create_token(self, project_id, user_id, is_admin=False):
        return self._run(self._thd_create_token, project_id, user_id, is_admin)

    def _thd_create_token(self, conn, project_id, user_id, is_admin):
        token = new_secret()
        conn.execute(
            tokens.insert().values(
                token_hash=hash_secret(token),
                project_id=project_id,
                user_id=user_id,
                is_admin=bool(is_admin),
                created_at=self._now(),
                revoked=False,
            )
        )
        return token

    def lookup_token(self, token):
        return self._run(self._thd_lookup_token, hash_secret(token))

    def _thd_lookup_token(self, conn, token_hash):
        return _row(
            conn.execute(
                select(tokens).where(tokens.c.token_hash == token_hash, tokens.c.revoked.is_(False))
            ).first()
        )

    # -- attach tokens -----------------------------------------------------

    def create_attach_token(self, container_uuid, project_id, user_id, options, ttl):
        """
        A one-time token for attaching to a container, valid ``ttl`` seconds;
        only its hash is stored.  Fires with ``(token, expires_at)``.
        """
        return self._run(self._thd_create_attach_token, container_uuid, project_id, user_id, options, ttl)

    def _thd_create_attach_token(self, conn, container_uuid, project_id, user_id, options, ttl):
        token = new_secret()
        expires_at = _utc(self._clock.seconds() + ttl)
        # Expired tokens are of no use to anyone: drop them as new ones come.
        conn.execute(attach_tokens.delete().where(attach_tokens.c.expires_at < self._now()))
        conn.execute(
            attach_tokens.insert().values(
                token_hash=hash_secret(token),
                container_uuid=container_uuid,
                project_id=project_id,
                user_id=user_id,
                options=options,
                expires_at=expires_at,
                used=False,
            )
        )
        return token, expires_at

    def redeem_attach_token(self, token):
        """
        Use a one-time token: fires with its row, or None when it is unknown,
        expired or already used.  Atomic: two redeemers cannot both win.
        """
        return self._run(self._thd_redeem_attach_token, hash_secret(token))

    def _thd_redeem_attach_token(self, conn, token_hash):
        result = conn.execute(
            attach_tokens.update()
            .where(
                attach_tokens.c.token_hash == token_hash,
                attach_tokens.c.used.is_(False),
                attach_tokens.c.expires_at >= self._now(),
            )
            .values(used=True)
        )
        if result.rowcount != 1:
            return None
        return _row(conn.execute(select(attach_tokens).where(attach_tokens.c.token_hash == token_hash)).first())

    # -- instances ---------------------------------------------------------

    def create_instance(self, name, provider, capacity, shared=True, project_id=None, memory=None, cpus=None):
        """
        A new instance row, status ``pending``; fires with ``(row, enroll_token)``.
        ``project_id``: the project it is created for (only its containers go
        there); None for nobody's.  ``memory`` (MiB) and ``cpus`` (cores):
        its size as the provider made it, None when not known.
        """
        return self._run(self._thd_create_instance, name, provider, capacity, shared, project_id, memory, cpus)

    def _thd_create_instance(self, conn, name, provider, capacity, shared, project_id=None, memory=None,
                             cpus=None):
        token = new_secret()
        values = dict(
            uuid=str(uuidlib.uuid4()),
            name=name,
            provider=provider,
            status="pending",
            capacity=capacity,
            enroll_token_hash=hash_secret(token),
            shared=shared,
            created_at=self._now(),
            project_id=project_id,
            memory=memory,
            cpus=cpus,
        )
        conn.execute(instances.insert().values(**values))
        return values, token

    def set_enroll_token(self, instance_uuid):
        """
        Issue a fresh enrollment token for an instance (the old one stops
        working); fires with the token.
        """
        return self._run(self._thd_set_enroll_token, instance_uuid)

    def _thd_set_enroll_token(self, conn, instance_uuid):
        token = new_secret()
        conn.execute(
            instances.update()
            .where(instances.c.uuid == instance_uuid, instances.c.status != "revoked")
            .values(enroll_token_hash=hash_secret(token), enrolled_at=None)
        )
        return token

    def consume_enroll_token(self, instance_uuid, token, cert_sha256):
        """
        Use the instance's one-time enrollment token: mark it used and keep
        the SHA-256 of the certificate the agent registers with from now on.
        Fires with True, or False when the token was used already (or was
        replaced, or the instance revoked or deleted) meanwhile.
        """
        return self._run(self._thd_consume_enroll_token, instance_uuid, hash_secret(token), cert_sha256)

    def _thd_consume_enroll_token(self, conn, instance_uuid, token_hash, cert_sha256):
        result = conn.execute(
            instances.update()
            .where(
                instances.c.uuid == instance_uuid,
                instances.c.enroll_token_hash == token_hash,
                instances.c.enrolled_at.is_(None),
                instances.c.status.notin_(("revoked", "deleted")),
            )
            .values(enrolled_at=self._now(), agent_cert_sha256=cert_sha256)
        )
        return result.rowcount == 1

    def replace_agent_cert(self, instance_uuid, old_sha256, new_sha256):
        """
        An enrolled agent renewed its certificate: the new one replaces the
        old one (which stops working).  Fires with True, or False when the
        old one was not the instance's (any more).
        """
        return self._run(self._thd_replace_agent_cert, instance_uuid, old_sha256, new_sha256)

    def _thd_replace_agent_cert(self, conn, instance_uuid, old_sha256, new_sha256):
        result = conn.execute(
            instances.update()
            .where(
                instances.c.uuid == instance_uuid,
                instances.c.agent_cert_sha256 == old_sha256,
                instances.c.status.notin_(("revoked", "deleted")),
            )
            .values(agent_cert_sha256=new_sha256)
        )
        return result.rowcount == 1

    def instance_by_token(self, token):
        return self._run(self._thd_instance_by_token, hash_secret(token))

    def _thd_instance_by_token(self, conn, token_hash):
        return _row(
            conn.execute(select(instances).where(instances.c.enroll_token_hash == token_hash)).first()
        )

    def update_instance(self, instance_uuid, **values):
        return self._run(self._thd_update_instance, instance_uuid, values)

    def _thd_update_instance(self, conn, instance_uuid, values):
        """
        True when the instance was updated; a revoked instance never is (its
        revocation is final: ``_thd_revoke_instance``).
        """
        if "last_seen_at" in values and values["last_seen_at"] is None:
            values["last_seen_at"] = self._now()
        result = conn.execute(
            instances.update()
            # A removed (deleted) instance is as final as a revoked one.
            .where(instances.c.uuid == instance_uuid, instances.c.status.notin_(("revoked", "deleted")))
            .values(**values)
        )
        return result.rowcount == 1

    def touch_instance(self, instance_uuid):
        return self.update_instance(instance_uuid, last_seen_at=None)

    def list_instances(self, provider=None):
        return self._run(self._thd_list_instances, provider)

    def _thd_list_instances(self, conn, provider):
        """
        The instances not deleted, each with ``containers`` (how many it
        holds) and ``usage`` (``csvc.store.capacity.thd_usage``).
        """
        query = (
            select(instances)
            .where(instances.c.status != "deleted")
            .order_by(instances.c.created_at, instances.c.uuid)
        )
        if provider is not None:
            query = query.where(instances.c.provider == provider)
        rows = [_row(r) for r in conn.execute(query)]
        usage = capacity.thd_usage(conn)
        for row in rows:
            row["usage"] = usage.get(row["uuid"], capacity.empty_usage())
            row["containers"] = row["usage"]["containers"]
        return rows

    def get_instance(self, ident):
        """
        An instance by uuid or name, or None.
        """
        return self._run(self._thd_get_instance, ident)

    def _thd_get_instance(self, conn, ident):
        return _row(
            conn.execute(
                select(instances)
                .where((instances.c.uuid == ident) | (instances.c.name == ident))
                # A removed instance's name may be taken again: the living first.
                .order_by(instances.c.status == "deleted", instances.c.created_at, instances.c.uuid)
            ).first()
        )

    def _thd_register_instance(self, conn, name, capacity):
        """
        An operator's host (provider ``static``), enrolled by hand: fires with
        ``(row, enroll_token)``; ValueError when the name is taken.
        """
        if self._thd_get_instance(conn, name) is not None:
            raise ValueError(f"an instance named {name!r} already exists")
        return self._thd_create_instance(conn, name, "static", capacity, True)

    def _thd_revoke_instance(self, conn, ident):
        """
        Revoke an instance (by uuid or name): its enrollment token stops
        working (the stored hash becomes that of a secret nobody knows) and its
        status becomes ``revoked``, which nothing else overwrites.  A connected
        agent is dropped at its next heartbeat.  Fires with the row as it was,
        or None when there is no such instance.
        """
        row = self._thd_get_instance(conn, ident)
        if row is None:
            return None
        conn.execute(
            instances.update()
            .where(instances.c.uuid == row["uuid"])
            .values(enroll_token_hash=hash_secret(new_secret()), status="revoked", agent_cert_sha256=None)
        )
        return row

    def register_instance(self, name, capacity, shared=True, project_id=None):
        """
        An operator's host, enrolled through the API: fires with ``(row,
        enroll_token)``; ValueError when the name is taken.
        """
        return self._run(self._thd_register_owned_instance, name, capacity, shared, project_id)

    def _thd_register_owned_instance(self, conn, name, capacity, shared, project_id):
        row, token = self._thd_register_instance(conn, name, capacity)
        conn.execute(
            instances.update().where(instances.c.uuid == row["uuid"]).values(shared=shared, project_id=project_id)
        )
        return self._thd_get_instance(conn, row["uuid"]), token

    def mark_instance_deleted(self, instance_uuid):
        """
        The instance was removed through its provider: status ``deleted``
        (final), its enrollment token dead.  The row stays for the record.
        """
        return self._run(self._thd_mark_instance_deleted, instance_uuid)

    def _thd_mark_instance_deleted(self, conn, instance_uuid):
        conn.execute(
            instances.update()
            .where(instances.c.uuid == instance_uuid)
            .values(status="deleted", enroll_token_hash=hash_secret(new_secret()), agent_cert_sha256=None)
        )

    def stale_instances(self, seen_before):
        """
        Instances (pending, active or down) whose agent was last heard of
        before ``seen_before`` (Unix seconds), or never and created before
        it, with how many live containers each still has (``live``).
        """
        return self._run(self._thd_stale_instances, _utc(seen_before))

    def _thd_stale_instances(self, conn, cutoff):
        live = (
            select(containers.c.instance_uuid, func.count().label("n"))
            .where(containers.c.status.in_(("creating", "created", "running")))
            .group_by(containers.c.instance_uuid)
            .subquery()
        )
        query = (
            select(instances, func.coalesce(live.c.n, 0).label("live"))
            .select_from(instances.outerjoin(live, live.c.instance_uuid == instances.c.uuid))
            .where(
                instances.c.status.in_(("active", "down", "draining")),
                or_(
                    instances.c.last_seen_at < cutoff,
                    and_(instances.c.last_seen_at.is_(None), instances.c.created_at < cutoff),
                ),
            )
            .order_by(instances.c.created_at, instances.c.uuid)
        )
        return [_row(r) for r in conn.execute(query)]

    def mark_instance_down(self, instance_uuid, reason, from_states, to_state):
        """
        The instance's agent is gone: an active instance becomes ``down``
        (a draining one stays draining) and every container on it in one of
        ``from_states`` becomes ``to_state`` with ``reason`` (the life
        cycle's ``instance_down``, csvc.compute.lifecycle).  Fires with the
        uuids of those containers.
        """
        return self._run(self._thd_mark_instance_down, instance_uuid, reason, tuple(from_states), to_state)

    def _thd_mark_instance_down(self, conn, instance_uuid, reason, from_states, to_state):
        conn.execute(
            instances.update()
            .where(instances.c.uuid == instance_uuid, instances.c.status.in_(("active", "pending")))
            .values(status="down")
        )
        moved = (containers.c.instance_uuid == instance_uuid) & containers.c.status.in_(from_states)
        errored = [r[0] for r in conn.execute(select(containers.c.uuid).where(moved))]
        if errored:
            conn.execute(containers.update().where(moved).values(status=to_state, status_reason=reason))
        return errored

    # -- containers --------------------------------------------------------

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
        return self._run(self._thd_place_container, values, instance_uuid)

    def _thd_place_container(self, conn, values, instance_uuid):
        quota_units.thd_check_placement(conn, values, self.quota_defaults)
        if conn.execute(
            select(containers.c.uuid).where(
                containers.c.project_id == values["project_id"], containers.c.name == values["name"]
            )
        ).first():
            raise NameInUse(values["name"])
        query = select(instances).order_by(instances.c.created_at, instances.c.uuid)
        if instance_uuid is not None:
            query = query.where(
                (instances.c.uuid == instance_uuid) | (instances.c.name == instance_uuid),
                instances.c.status != "deleted",
            )
        else:
            # Fill-first over the instances this project may use: its own and
            # the shared ones (never another project's, nor an unshared one
            # nobody owns: those take a container only when named).
            query = query.where(
                or_(
                    instances.c.project_id == values["project_id"],
                    and_(instances.c.project_id.is_(None), instances.c.shared.is_(True)),
                )
            )
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        candidates = [_row(r) for r in conn.execute(query)]
        if instance_uuid is not None and not candidates:
            raise NoRoom(f"instance {instance_uuid!r} does not exist")
        want = capacity.wanted(values)
        # Counted after the candidates are locked (PostgreSQL): nobody else
        # places on them until this transaction ends.
        usage = capacity.thd_usage(conn, [inst["uuid"] for inst in candidates])
        chosen = None
        usable = []
        for inst in candidates:
            if inst.get("project_id") not in (None, values["project_id"]):
                raise NoRoom(f"instance {inst['name']} belongs to another project")
            if inst["status"] != "active":
                if instance_uuid is not None:
                    raise NoRoom(f"instance {inst['name']} is {inst['status']}")
                continue
            usable.append(capacity.size(inst))
            short = capacity.shortfall(usable[-1], usage.get(inst["uuid"], capacity.empty_usage()), want)
            if short is None:
                chosen = inst
                break
            if instance_uuid is not None:
                too_large = capacity.never_fits(usable, want, f"instance {inst['name']}")
                if too_large is not None:
                    raise too_large
                raise NoRoom(f"instance {inst['name']} is full ({short})")
        if chosen is None:
            too_large = capacity.never_fits(usable, want, "any active instance") if usable else None
            if too_large is not None:
                raise too_large
            raise NoRoom("no active instance has room for another container")
        row = dict(values)
        row.update(
            instance_uuid=chosen["uuid"],
            created_at=self._now(),
            last_seq=0,
            log_cursor="",
        )
        try:
            with conn.begin_nested():
                conn.execute(containers.insert().values(**row))
        except IntegrityError:
            # A concurrent create took the name between the check and here.
            raise NameInUse(values["name"]) from None
        return row

    # -- notification subscriptions ----------------------------------------

    def create_subscription(self, project_id, url, event_types, limit):
        """
        A project's webhook; fires with its row, or fails with
        ``QuotaExceeded`` when the project has ``limit`` already.
        """
        return self._run(subscription_units.thd_create, project_id, url, event_types, self._now(), limit)

    def list_subscriptions(self, project_id=None):
        return self._run(subscription_units.thd_list, project_id)

    def delete_subscription(self, subscription_uuid, project_id=None):
        """
        Fires with the deleted row, or None when there was none (in the project).
        """
        return self._run(subscription_units.thd_delete, subscription_uuid, project_id)

    # -- images projects pulled (csvc.store.images) --------------------------

    def image_pull_started(self, project_id, instance_uuid, reference):
        return self._run(image_units.thd_pull_started, project_id, instance_uuid, reference, self._now())

    def image_pull_ended(self, project_id, instance_uuid, reference, image_id):
        return self._run(image_units.thd_pull_ended, project_id, instance_uuid, reference, image_id, self._now())

    def image_claims(self, image_ids):
        return self._run(image_units.thd_claims, image_ids)

    # -- quotas ------------------------------------------------------------

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
        return self._run(self._thd_quota_usage, project_id)

    def _thd_quota_usage(self, conn, project_id):
        return (
            quota_units.thd_limits(conn, project_id, self.quota_defaults),
            quota_units.thd_usage(conn, project_id),
        )

    def get_container(self, ident, project_id=None):
        """
        A container by uuid or name, within ``project_id`` unless it is None.
        """
        return self._run(self._thd_get_container, ident, project_id)

    def _thd_get_container(self, conn, ident, project_id):
        condition = (containers.c.uuid == ident) | (containers.c.name == ident)
        if 3 <= len(ident) <= 64 and all(c in "0123456789abcdef" for c in ident):
            # Docker ids, full or a prefix, as the docker CLI accepts them.
            condition = condition | containers.c.engine_id.startswith(ident, autoescape=True)
        query = select(containers).where(condition)
        if project_id is not None:
            query = query.where(containers.c.project_id == project_id)
        rows = [_row(r) for r in conn.execute(query.limit(64))]
        # Exact matches first: uuid, engine id, name; then a unique prefix.
        for key in ("uuid", "engine_id", "name"):
            for row in rows:
                if row[key] == ident:
                    return row
        return rows[0] if len(rows) == 1 else None

    def list_containers(self, project_id=None, instance_uuid=None):
        return self._run(self._thd_list_containers, project_id, instance_uuid)

    def _thd_list_containers(self, conn, project_id, instance_uuid):
        query = select(containers).order_by(containers.c.created_at, containers.c.uuid)
        if project_id is not None:
            query = query.where(containers.c.project_id == project_id)
        if instance_uuid is not None:
            query = query.where(containers.c.instance_uuid == instance_uuid)
        return [_row(r) for r in conn.execute(query)]

    def update_container(self, container_uuid, expect_status=None, **values):
        """
        Update a container's row; with ``expect_status`` (a status or a tuple
        of them) only when its status is one of them.  Fires with the new row,
        or None when nothing matched.
        """
        return self._run(self._thd_update_container, container_uuid, expect_status, values)

    def _thd_update_container(self, conn, container_uuid, expect_status, values):
        condition = containers.c.uuid == container_uuid
        if expect_status is not None:
            if isinstance(expect_status, str):
                expect_status = (expect_status,)
            condition = and_(condition, containers.c.status.in_(expect_status))
        result = conn.execute(containers.update().where(condition).values(**values))
        if result.rowcount == 0:
            return None
        return _row(conn.execute(select(containers).where(containers.c.uuid == container_uuid)).first())

    def update_container_resources(self, container_uuid, host_update, memory=None, cpu=None):
        """
        Merge ``host_update`` into a container's ``docker_config``
        HostConfig and give it new ``memory`` (MiB) and ``cpu`` (None:
        unchanged), within its project's quota (``QuotaExceeded`` otherwise;
        checked, and on PostgreSQL locked, in the same transaction, where the
        merge reads the row too: concurrent updates do not lose each other).
        Fires with the ``(before, after)`` rows, None when it is gone.
        """
        return self._run(self._thd_update_container_resources, container_uuid, host_update, memory, cpu)

    def _thd_update_container_resources(self, conn, container_uuid, host_update, memory, cpu):
        query = select(containers).where(containers.c.uuid == container_uuid)
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        current = conn.execute(query).first()
        if current is None:
            return None
        current = _row(current)
        config = dict(current["docker_config"] or {})
        config["HostConfig"] = dict(config.get("HostConfig") or {}, **host_update)
        config.setdefault("Config", {})
        memory = current["memory"] if memory is None else memory
        cpu = current["cpu"] if cpu is None else cpu
        quota_units.thd_check_resize(conn, current["project_id"], current, memory, cpu, self.quota_defaults)
        conn.execute(containers.update().where(containers.c.uuid == container_uuid).values(
            memory=memory, cpu=cpu, docker_config=config))
        after = _row(conn.execute(select(containers).where(containers.c.uuid == container_uuid)).first())
        return current, after

    def restore_container_resources(self, container_uuid, before, after):
        """
        Put back ``before``'s ``docker_config``, ``memory`` and ``cpu`` if
        the container still has ``after``'s (nothing changed them since);
        fires with whether it did.
        """
        return self._run(self._thd_restore_container_resources, container_uuid, before, after)

    def _thd_restore_container_resources(self, conn, container_uuid, before, after):
        condition = containers.c.uuid == container_uuid
        query = select(containers).where(condition)
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        current = conn.execute(query).first()
        if current is None:
            return False
        current = _row(current)
        if any(current[k] != after[k] for k in ("docker_config", "memory", "cpu")):
            return False
        conn.execute(containers.update().where(condition).values(
            docker_config=before["docker_config"], memory=before["memory"], cpu=before["cpu"]))
        return True

    def rename_container(self, container_uuid, name):
        """
        Give a container a new name, unique within its project; fires with
        the new row (None when it is gone), fails with ``NameInUse``.
        """
        return self._run(self._thd_rename_container, container_uuid, name)

    def _thd_rename_container(self, conn, container_uuid, name):
        current = conn.execute(select(containers).where(containers.c.uuid == container_uuid)).first()
        if current is None:
            return None
        current = _row(current)
        if current["name"] == name:
            return current
        if conn.execute(
            select(containers.c.uuid).where(
                containers.c.project_id == current["project_id"], containers.c.name == name
            )
        ).first():
            raise NameInUse(name)
        try:
            with conn.begin_nested():
                conn.execute(containers.update().where(containers.c.uuid == container_uuid).values(name=name))
        except IntegrityError:
            raise NameInUse(name) from None
        return _row(conn.execute(select(containers).where(containers.c.uuid == container_uuid)).first())

    def delete_container(self, container_uuid):
        d = self._run(self._thd_delete_container, container_uuid)
        if self.output is not None:
            d.addCallback(lambda _: self.output.delete(container_uuid))
        return d

    def _thd_delete_container(self, conn, container_uuid):
        conn.execute(output_chunks.delete().where(output_chunks.c.container_uuid == container_uuid))
        conn.execute(containers.delete().where(containers.c.uuid == container_uuid))

    # -- output ------------------------------------------------------------

    def append_output(self, chunks):
        """
        Persist ``chunks``, a list of ``(uuid, seq, stream, data, cursor)`` in
        seq order per container, and move each container's ``last_seq`` and
        ``log_cursor`` to its last chunk, in one transaction.

        With output files, this fires once the bytes are written (the
        agent's window moves on), and the positions are committed after,
        coalesced, one commit in flight (``output_committed`` tells when).
        That loses nothing: after a crash the start cuts the files back to
        the committed positions and the agent reads the rest again from the
        engine's log, from the committed cursor.
        """
        if self.output is None:
            return self._run(self._thd_append_output, chunks)

        def written(_):
            for u, seq, _stream, _data, cursor in chunks:
                self._positions[u] = (seq, cursor)
            self._commit_positions()

        return self.output.append(chunks).addCallback(written)

    def output_committed(self, container_uuid):
        """
        Fires once no written output of the container waits for its position
        to be committed (at once when none does).
        """
        if container_uuid not in self._positions and container_uuid not in self._positions_inflight:
            return succeed(None)
        d = Deferred()
        self._positions_waiters.setdefault(container_uuid, []).append(d)
        self._commit_positions(now=True)
        return d

    def _commit_positions(self, now=False):
        if self._positions_inflight or not self._positions or not self.running:
            return
        if self._positions_retry is not None and self._positions_retry.active():
            if not (now or self._positions_waiters):
                return
            self._positions_retry.cancel()
        wait = self._positions_last + self.positions_interval - self._clock.seconds()
        if wait > 0 and not (now or self._positions_waiters):
            # Each commit costs the store thread (and the GIL) about as much
            # whatever it carries: coalesce, unless someone waits for it.
            self._positions_retry = self._clock.callLater(wait, self._commit_positions)
            return
        self._positions_last = self._clock.seconds()
        batch, self._positions = self._positions, {}
        self._positions_inflight = batch

        def committed(moved):
            self._positions_inflight = {}
            self._dropped(moved)
            for u in batch:
                if u not in self._positions:
                    for d in self._positions_waiters.pop(u, []):
                        d.callback(None)
            self._commit_positions()

        def failed(failure):
            self.log.failure("committing the output positions of {n} containers failed", failure, n=len(batch))
            self._positions_inflight = {}
            for u, position in batch.items():
                self._positions.setdefault(u, position)
            self._positions_retry = self._clock.callLater(1.0, self._commit_positions)

        self._run(self._thd_commit_positions, batch).addCallbacks(committed, failed)

    def _thd_commit_positions(self, conn, positions):
        self._thd_set_positions(conn, positions)
        return self._thd_enforce(conn, {u: None for u in positions})

    def _thd_enforce(self, conn, touched):
        return retention.thd_enforce(conn, touched, self._stored, self.output_retention, self.quota_defaults)

    def _dropped(self, moved):
        """
        The retention dropped the oldest output of ``moved`` (uuid -> first
        chunk kept), committed: files punch it out now.
        """
        if self.output is not None:
            for u, first in moved.items():
                self.output.drop_before(u, first).addErrback(
                    lambda f, u=u: self.log.failure("dropping old output of {uuid} failed", f, uuid=u))

    def _thd_set_positions(self, conn, positions):
        conn.execute(
            containers.update()
            .where(containers.c.uuid == bindparam("u"), containers.c.last_seq < bindparam("seq"))
            .values(last_seq=bindparam("seq"), log_cursor=bindparam("cursor")),
            [dict(u=u, seq=seq, cursor=cursor) for u, (seq, cursor) in positions.items()],
        )

    def _thd_append_output(self, conn, chunks):
        at = self._clock.seconds()
        conn.execute(
            output_chunks.insert(),
            [
                dict(container_uuid=u, seq=seq, stream=stream, data=data, at=at)
                for (u, seq, stream, data, _cursor) in chunks
            ],
        )
        last, added = {}, {}
        for u, seq, _stream, data, cursor in chunks:
            last[u] = (seq, cursor)
            added[u] = added.get(u, 0) + len(data)
        self._thd_set_positions(conn, last)
        self._thd_enforce(conn, added)

    def output_start(self, container_uuid):
        """
        ``(first, dropped)``: the first chunk the container keeps, and how
        many bytes before it the retention dropped; None when it is gone.
        """
        return self._run(self._thd_output_start, container_uuid)

    def _thd_output_start(self, conn, container_uuid):
        row = conn.execute(
            select(containers.c.output_first, containers.c.output_dropped).where(containers.c.uuid == container_uuid)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def read_output(self, container_uuid, after_seq=0, limit=64, before_seq=None, descending=False,
                    with_time=False):
        """
        Up to ``limit`` chunks ``(seq, stream, data)`` of a container with
        ``after_seq < seq`` (and ``seq < before_seq``), in seq order (or
        reverse order with ``descending``); ``with_time`` adds when each
        arrived, ``(seq, stream, data, at)``.
        """
        if self.output is not None:
            return self.output.read(container_uuid, after_seq, limit, before_seq, descending, with_time)
        return self._run(
            self._thd_read_output, container_uuid, after_seq, limit, before_seq, descending, with_time
        )

    def _thd_read_output(self, conn, container_uuid, after_seq, limit, before_seq, descending, with_time):
        columns = [output_chunks.c.seq, output_chunks.c.stream, output_chunks.c.data]
        if with_time:
            columns.append(output_chunks.c.at)
        query = select(*columns).where(
            output_chunks.c.container_uuid == container_uuid, output_chunks.c.seq > after_seq
        )
        if before_seq is not None:
            query = query.where(output_chunks.c.seq < before_seq)
        order = output_chunks.c.seq.desc() if descending else output_chunks.c.seq
        return [tuple(r) for r in conn.execute(query.order_by(order).limit(limit))]

    def prepare_output(self):
        """
        At start, before the reactor runs (blocking): move output stored as
        database rows (before output files, or with ``output-store = db``)
        into files, then line the files and the database's positions up
        (``OutputFiles.reconcile``).
        """
        if self.output is None:
            return
        with self.engine.begin() as conn:
            moved = [
                r[0] for r in conn.execute(select(output_chunks.c.container_uuid).distinct())
            ]
        for u in moved:
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(containers.c.last_seq, containers.c.log_cursor).where(containers.c.uuid == u)
                ).first()
                if row is not None:
                    after = 0
                    first = conn.execute(
                        select(func.min(output_chunks.c.seq)).where(output_chunks.c.container_uuid == u)
                    ).scalar()
                    if first and first > 1:
                        # The retention dropped the rows before it.
                        self.output.skip_to(u, first)
                    while True:
                        batch = conn.execute(
                            select(output_chunks.c.seq, output_chunks.c.stream, output_chunks.c.data,
                                   output_chunks.c.at)
                            .where(output_chunks.c.container_uuid == u, output_chunks.c.seq > after)
                            .order_by(output_chunks.c.seq).limit(256)
                        ).all()
                        if not batch:
                            break
                        # Rows do not keep each chunk's cursor; only the last
                        # one (in the container's row) is ever used to resume.
                        self.output.write_now([
                            (u, seq, stream, data, row.log_cursor if seq == row.last_seq else "", at)
                            for seq, stream, data, at in batch
                        ])
                        after = batch[-1][0]
                conn.execute(output_chunks.delete().where(output_chunks.c.container_uuid == u))
        with self.engine.begin() as conn:
            positions = dict(conn.execute(select(containers.c.uuid, containers.c.last_seq)).all())
            behind = self.output.reconcile(positions)
            for u, (seq, cursor) in behind.items():
                self.log.warn(
                    "output of {uuid} on disk ends at chunk {seq}, the database said {last}: "
                    "the agent will send the rest again", uuid=u, seq=seq, last=positions[u],
                )
                conn.execute(
                    containers.update().where(containers.c.uuid == u).values(last_seq=seq, log_cursor=cursor)
                )
        self._count_output_files()

    def _count_output_files(self):
        """
        At start (blocking): what each container keeps in its files, from
        their indexes (counted afresh: the files are what is there), and
        the holes punched again where a stop came between the commit of a
        drop and its punch.
        """
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(containers.c.uuid, containers.c.last_seq, containers.c.output_first, containers.c.output_bytes)
            ).all()
            for u, last_seq, first, kept in rows:
                if first > last_seq + 1:
                    # The files lost their newest chunks (see reconcile).
                    first = last_seq + 1
                    conn.execute(containers.update().where(containers.c.uuid == u).values(output_first=first))
                counted = self.output.thd_kept(u, first, last_seq)
                if counted != kept:
                    conn.execute(containers.update().where(containers.c.uuid == u).values(output_bytes=counted))
                if first > 1:
                    self.output.known_first(u, first)
                    self.output.punch_now(u, first)


__all__ = [
    "Store", "NameInUse", "NoRoom", "ContainerTooLarge", "QuotaExceeded", "make_engine", "upgrade", "hash_secret",
    "models",
]
