"""
The store's tables (SQLAlchemy Core).  Alembic migrations in ``migrations/``
create them; keep the two in step.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

instances = Table(
    "instances",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("provider", String(32), nullable=False),
    # pending (created, agent not yet registered), active, down, draining
    # (no new placements; removed once empty), revoked, deleted (removed
    # through its provider; kept for the record)
    Column("status", String(16), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("enroll_token_hash", String(64), nullable=False, unique=True),
    Column("hostname", String(255)),
    Column("engine", String(32)),
    Column("shared", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime),
    # The project an instance was created for through a provider: only its
    # containers go there.  NULL: nobody's (placed on when ``shared``).
    Column("project_id", String(64), index=True),
    # What runs the instance, as its provider names it (a Nova server's id);
    # NULL for local agents and an operator's hosts.
    Column("server_id", String(64)),
    # The instance's size besides ``capacity`` (containers): memory in MiB
    # and cpu in cores, as its provider sized it (the local settings, a Nova
    # flavor) or its agent reported it (an operator's host).  NULL: not
    # known yet, placement does not count that resource there.
    Column("memory", Integer),
    Column("cpus", Float),
    # When the one-time enrollment token was used (NULL: not yet), where the
    # control plane is the agents' CA; and the SHA-256 of the certificate the
    # agent registers with from then on (csvc.agents.tls).
    Column("enrolled_at", DateTime),
    Column("agent_cert_sha256", String(64)),
)

containers = Table(
    "containers",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("project_id", String(64), nullable=False, index=True),
    Column("user_id", String(64)),
    Column("image", String(512), nullable=False),
    Column("command", JSON),
    Column("environment", JSON),
    Column("workdir", String(4096)),
    Column("labels", JSON),
    Column("tty", Boolean, nullable=False, default=False),
    Column("interactive", Boolean, nullable=False, default=False),
    Column("memory", Integer),
    Column("cpu", Float),
    Column("auto_remove", Boolean, nullable=False, default=False),
    Column("entrypoint", JSON),
    Column("stdin_once", Boolean),
    # Docker's --rm: the record goes too once the exit is recorded (native
    # auto_remove keeps the record, with its output and exit code).
    Column("remove_on_exit", Boolean, nullable=False, default=False),
    # A Docker create's honoured options as the client sent them, validated
    # (``csvc.api.docker_options``): ``{"Config": {...}, "HostConfig":
    # {...}}``, merged into the engine's create config by the agent.
    Column("docker_config", JSON),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("exit_code", Integer),
    Column("instance_uuid", String(36), index=True),
    Column("engine_id", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    # Where the persisted output ends: the last chunk's seq and the agent's
    # engine-log cursor after it.  Updated in the transaction that stores it.
    Column("last_seq", Integer, nullable=False, default=0),
    Column("log_cursor", String(128), nullable=False, default=""),
    # The retention policy's counters (csvc/store/retention.py), updated in
    # the transaction that stores output (or commits its position): the
    # first chunk still kept (those before it were dropped), the bytes kept,
    # and the bytes dropped so far.
    Column("output_first", Integer, nullable=False, default=1, server_default="1"),
    Column("output_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    Column("output_dropped", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("project_id", "name", name="uq_containers_project_name"),
)

output_chunks = Table(
    "output_chunks",
    metadata,
    Column("container_uuid", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("stream", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    # When the journal received it (Unix seconds): Docker's logs since/until.
    Column("at", Float),
)

attach_tokens = Table(
    "attach_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("container_uuid", String(36), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("user_id", String(64)),
    # what the session may do: streams, stdin, logs replay; exec id for execs
    Column("options", JSON, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
)

quotas = Table(
    "quotas",
    metadata,
    Column("project_id", String(64), primary_key=True),
    # NULL: the service's default (config); -1: unlimited.
    Column("containers", Integer),
    Column("memory", Integer),  # MiB
    Column("cpu", Integer),
    Column("attach_sessions", Integer),
    # A project's networks take address ranges from its instance's engine,
    # which has some 30 in all (Docker's default pools).
    Column("networks", Integer),
    # MiB of container output the project's containers keep together.
    Column("output", Integer),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("url", String(2048), nullable=False),
    # event types and wildcards (``compute.container.*``), csvc.notify.events
    Column("event_types", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

project_images = Table(
    "project_images",
    metadata,
    # Which project pulled which image onto which instance, so that only it
    # sees and runs it (csvc.compute.images).  ``reference`` in Docker's
    # familiar form (``busybox:latest``); ``image_id`` the engine's id, or ""
    # while the pull runs (the reference is then nobody's to see).
    Column("project_id", String(64), primary_key=True),
    Column("instance_uuid", String(36), primary_key=True),
    Column("reference", String(512), primary_key=True),
    Column("image_id", String(128), primary_key=True, index=True),
    Column("pulled_at", DateTime, nullable=False),
)
