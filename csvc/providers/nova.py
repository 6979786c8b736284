"""
The ``nova`` instance provider: each instance is an OpenStack server, made
through openstacksdk from the configured flavor, image, network and key,
whose user data (cloud-config) installs csvc and starts ``csvc-agent``
with the instance's enrollment token, in a file of mode 0600, never on a
command line.  Where the control plane is the agents' CA (its
``agents-tls-dir`` holds ``ca.key``), the user data also carries the CA's
certificate: the agent verifies the control plane over TLS, trades the
one-time token for a certificate of its own, and registers by it from then on.

openstacksdk blocks: every SDK call runs on the provider's own thread pool
(``csvc-nova``) inside ``NovaCompute``, which hands back plain dicts only.
The waits between status polls are ``deferLater`` on the injected clock, on
the reactor; no thread sleeps.

The server's id is kept on the instance row (``server_id``), so removal
finds it after a restart.
"""

import base64
import os
import secrets
import shlex
from dataclasses import dataclass

import yaml

from twisted.application.service import Service
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from csvc.notify.notifier import NullNotifier


class NovaError(Exception):
    """
    Nova refused a request or a server failed; the message carries Nova's
    own words (its fault message or error body).
    """


class NovaTimeout(NovaError):
    """
    A server did not reach the awaited state within the timeout.
    """


#: settings of the ``nova`` provider (``csvc.config``)
AUTH_SETTINGS = ("nova-auth-url", "nova-username", "nova-password", "nova-project")
REQUIRED_SETTINGS = ("nova-flavor", "nova-image", "nova-network", "nova-agent-connect")

#: Where the user data puts the agent's files on the server.
AGENT_CA = "/etc/csvc-agent/ca.pem"
AGENT_TOKEN = "/etc/csvc-agent/enroll-token"
AGENT_STATE = "/var/lib/csvc-agent"
#: Nova refuses user data larger than this (base64-encoded).
USER_DATA_MAX = 65535


def agents_ca(settings):
    """
    The CA certificate (PEM text) servers' agents verify the control plane
    with and enroll against, when the control plane is the agents' CA
    (``agents-tls-dir`` holds ``ca.key``); None otherwise.
    """
    from csvc.agents import tls as agenttls

    directory = settings.get("agents-tls-dir")
    if not directory or not agenttls.can_enroll(directory):
        return None
    with open(os.path.join(directory, agenttls.CA_CERT), encoding="ascii") as f:
        return f.read()


def check_settings(settings):
    """
    What is wrong with the ``nova`` provider's settings beyond what
    ``csvc.config`` checks, or None.
    """
    connect = settings.get("nova-agent-connect") or ""
    if settings.get("agents-tls-dir") and os.path.exists(os.path.join(settings["agents-tls-dir"], "ca.key")):
        parts = connect.split(":")
        if len(parts) != 3 or parts[0] != "tls" or not parts[2].isdigit():
            return (f"--nova-agent-connect {connect!r}: servers' agents enroll with this control plane's CA "
                    "(--agents-tls-dir holds ca.key), so they dial tls:HOST:PORT, HOST one of the names "
                    "of its server certificate")
    return None


class _CloudConfig(yaml.SafeDumper):
    """
    YAML with each multi-line text (a certificate, the unit) as a literal
    block, as one would write it by hand.
    """


def _text(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_CloudConfig.add_representer(str, _text)


@dataclass(frozen=True)
class ServerTemplate:
    """
    What every server is made of, and how its agent is installed.
    """

    flavor: str
    image: str
    network: str
    key_name: str | None
    #: the agents' endpoint as the servers reach it (``tcp:HOST:PORT``)
    agent_connect: str
    #: what ``pip install`` is given on the server
    agent_package: str = "csvc"
    #: the agents' CA certificate (PEM) where the control plane is their CA
    #: (``agents_ca``): the agent enrolls; None: it registers by token
    ca_pem: str | None = None

    def agent_command(self, instance_name, capacity):
        """
        The agent's command line (no secret on it: the token is read from
        its file).
        """
        parts = [
            "/opt/csvc/bin/twistd", "-n", "--pidfile=", "csvc-agent",
            "--connect", self.agent_connect,
            "--capacity", str(capacity),
            "--hostname", instance_name,
            "--enroll-token-file", AGENT_TOKEN,
        ]
        if self.ca_pem is not None:
            parts += ["--ca-cert", AGENT_CA, "--state-dir", AGENT_STATE]
        # systemd's ExecStart= expands $ and % itself: neither may come from a setting.
        return " ".join(shlex.quote(part).replace("%", "%%").replace("$", "$$") for part in parts)

    def user_data(self, instance_name, enroll_token, capacity):
        """
        The cloud-init user data (``#cloud-config``): the enrollment token in
        a file only root reads (``write_files``, mode 0600), the CA
        certificate beside it, and a systemd unit that runs ``twistd -n
        csvc-agent`` reading the token from its file; ``runcmd`` installs
        csvc in a venv and starts the unit.  Fails with NovaError when it
        would exceed what Nova takes.
        """
        unit = "\n".join(
            [
                "[Unit]",
                "Description=csvc agent",
                "After=network-online.target docker.service",
                "Wants=network-online.target",
                "[Service]",
                "ExecStart=" + self.agent_command(instance_name, capacity),
                "Restart=always",
                "RestartSec=2",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ]
        )
        files = [{"path": AGENT_TOKEN, "owner": "root:root", "permissions": "0600", "content": enroll_token + "\n"}]
        if self.ca_pem is not None:
            files.append({"path": AGENT_CA, "owner": "root:root", "permissions": "0644", "content": self.ca_pem})
        files.append({"path": "/etc/systemd/system/csvc-agent.service", "owner": "root:root",
                      "permissions": "0644", "content": unit})
        install = (
            "set -eu; "
            "if ! command -v docker >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then "
            "apt-get update && apt-get install -y docker.io python3-venv; fi; "
            "python3 -m venv /opt/csvc; "
            "/opt/csvc/bin/pip install " + shlex.quote(self.agent_package)
        )
        document = {
            "write_files": files,
            "runcmd": [
                ["sh", "-c", install],
                ["systemctl", "daemon-reload"],
                ["systemctl", "enable", "--now", "csvc-agent"],
            ],
        }
        text = "#cloud-config\n# csvc instance " + instance_name + "\n" + yaml.dump(
            document, Dumper=_CloudConfig, default_flow_style=False, sort_keys=False, width=1000
        )
        encoded = len(base64.b64encode(text.encode("utf-8")))
        if encoded > USER_DATA_MAX:
            raise NovaError(f"the user data of instance {instance_name} is {encoded} bytes base64-encoded; "
                            f"Nova takes at most {USER_DATA_MAX}")
        return text


def connection_factory(settings):
    """
    A function that makes an openstacksdk ``Connection`` from the settings
    (a clouds.yaml cloud, ``nova-cloud``, or the ``nova-auth-*`` ones); it
    is called on the provider's thread pool.
    """

    def connect():
        from openstack.connection import Connection

        if settings.get("nova-cloud"):
            return Connection(cloud=settings["nova-cloud"])
        return Connection(
            auth_url=settings["nova-auth-url"],
            username=settings["nova-username"],
            password=settings["nova-password"],
            project_name=settings["nova-project"],
            user_domain_name=settings.get("nova-user-domain") or "Default",
            project_domain_name=settings.get("nova-project-domain") or "Default",
        )

    return connect


def _nova_message(exc):
    """
    Nova's words from an SDK exception (its error body's message).
    """
    details = getattr(exc, "details", None)
    status = getattr(exc, "status_code", None)
    text = details or str(exc)
    return f"{status}: {text}" if status else text


class NovaCompute:
    """
    The compute API, blocking: call only from the provider's thread pool.
    Returns plain dicts (``id``, ``status``, ``fault``), never SDK objects.
    """

    def __init__(self, connect):
        self._connect = connect
        self._conn = None

    def _compute(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn.compute

    @staticmethod
    def _plain(server):
        fault = server.fault or None
        return {"id": server.id, "status": server.status, "fault": dict(fault) if fault else None}

    def create_server(self, name, template, user_data):
        from openstack import exceptions

        attrs = dict(
            name=name,
            flavor_id=template.flavor,
            image_id=template.image,
            networks=[{"uuid": template.network}],
            user_data=base64.b64encode(user_data.encode("utf-8")).decode("ascii"),
            metadata={"csvc-instance": name},
        )
        if template.key_name:
            attrs["key_name"] = template.key_name
        try:
            return self._plain(self._compute().create_server(**attrs))
        except exceptions.HttpException as exc:
            raise NovaError(f"Nova refused to create server {name}: {_nova_message(exc)}") from None

    def flavor(self, flavor_id):
        """
        The flavor's size: ``{"ram": MiB, "vcpus": N}``.
        """
        from openstack import exceptions

        try:
            flavor = self._compute().get_flavor(flavor_id)
        except exceptions.HttpException as exc:
            raise NovaError(f"Nova could not show flavor {flavor_id}: {_nova_message(exc)}") from None
        return {"ram": int(flavor.ram), "vcpus": int(flavor.vcpus)}

    def server(self, server_id):
        """
        The server, or None once Nova answers 404.
        """
        from openstack import exceptions

        try:
            return self._plain(self._compute().get_server(server_id))
        except exceptions.NotFoundException:
            return None
        except exceptions.HttpException as exc:
            raise NovaError(f"Nova could not show server {server_id}: {_nova_message(exc)}") from None

    def delete_server(self, server_id):
        from openstack import exceptions

        try:
            self._compute().delete_server(server_id, ignore_missing=True)
        except exceptions.HttpException as exc:
            raise NovaError(f"Nova refused to delete server {server_id}: {_nova_message(exc)}") from None


class NovaProvider(Service):
    """
    Instances as Nova servers, one per ``create_instance`` (an
    ``IInstanceProvider``).  ``compute`` is a ``NovaCompute`` (or anything
    with its methods); its calls run on this service's thread pool.
    ``timeout`` bounds each wait for ACTIVE or for a deletion; ``poll`` is
    the interval between status checks.
    """

    log = Logger()
    name = "nova"

    def __init__(self, store, compute, template, capacity, reactor, timeout=300.0, poll=2.0, threads=4,
                 notifier=None):
        self.capacity = capacity
        #: ``compute.instance.create`` / ``.delete`` go here (``csvc.notify``)
        self.notifier = notifier if notifier is not None else NullNotifier()
        self._store = store
        self._compute = compute
        self._template = template
        self._reactor = reactor
        self.timeout = timeout
        self.poll = poll
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name="csvc-nova")
        #: ``(memory, cpus)`` of the flavor, once Nova has told it
        self._size = None

    def startService(self):
        Service.startService(self)
        self._pool.start()

    def stopService(self):
        Service.stopService(self)
        self._pool.stop()

    def _call(self, method, *args):
        return deferToThreadPool(self._reactor, self._pool, method, *args)

    @inlineCallbacks
    def size(self):
        """
        Fires with the flavor's ``(ram, vcpus)``, asked of Nova once.
        """
        if self._size is None:
            flavor = yield self._call(self._compute.flavor, self._template.flavor)
            self._size = (flavor["ram"], float(flavor["vcpus"]))
        return self._size

    @inlineCallbacks
    def create_instance(self, project_id):
        """
        A new server for ``project_id``; fires with the instance row
        (``server_id`` set; ``pending`` until its agent registers) once Nova
        says ACTIVE.  Fails with ``NovaError`` naming Nova's fault, or
        ``NovaTimeout``; the row is then marked deleted and a server that
        was made is deleted.
        """
        name = f"nova-{secrets.token_hex(4)}"
        memory, cpus = yield self.size()
        row, token = yield self._store.create_instance(name, "nova", self.capacity, shared=False,
                                                       project_id=project_id, memory=memory, cpus=cpus)
        user_data = self._template.user_data(name, token, self.capacity)
        server = None
        try:
            server = yield self._call(self._compute.create_server, name, self._template, user_data)
            row = dict(row, server_id=server["id"])
            yield self._store.update_instance(row["uuid"], server_id=server["id"])
            self.log.info("Nova server {server} of instance {name} created for project {project}",
                          server=server["id"], name=name, project=project_id)
            yield self._await_active(name, server)
        except Exception:
            yield self._abandon(row, server)
            raise
        self.notifier.instance_created(row, project_id)
        return row

    @inlineCallbacks
    def _await_active(self, name, server):
        deadline = self._reactor.seconds() + self.timeout
        while True:
            if server is None:
                raise NovaError(f"Nova server of instance {name} vanished while it was being built")
            if server["status"] == "ACTIVE":
                return server
            if server["status"] == "ERROR":
                fault = (server.get("fault") or {}).get("message") or "no fault recorded"
                raise NovaError(f"Nova server {server['id']} of instance {name} went to ERROR: {fault}")
            if self._reactor.seconds() >= deadline:
                raise NovaTimeout(
                    f"Nova server {server['id']} of instance {name} was not ACTIVE within {self.timeout:g} s "
                    f"(still {server['status']})"
                )
            yield deferLater(self._reactor, min(self.poll, max(deadline - self._reactor.seconds(), 0)),
                             lambda: None)
            server = yield self._call(self._compute.server, server["id"])

    @inlineCallbacks
    def _abandon(self, row, server):
        """
        A create failed: its server goes (best effort), its row is deleted.
        """
        if server is not None:
            try:
                yield self._delete(row["name"], server["id"])
            except Exception:
                self.log.failure("deleting the Nova server {server} of failed instance {name} failed",
                                 server=server["id"], name=row["name"])
        yield self._store.mark_instance_deleted(row["uuid"])

    def remove_instance(self, row):
        """
        Delete the instance's server; fires once Nova answers 404 for it.
        """
        d = self._delete(row["name"], row.get("server_id"))
        d.addCallback(lambda _: self.notifier.instance_deleted(row, row.get("project_id")))
        return d

    @inlineCallbacks
    def _delete(self, name, server_id):
        if not server_id:
            self.log.warn("instance {name} has no Nova server to delete", name=name)
            return
        yield self._call(self._compute.delete_server, server_id)
        deadline = self._reactor.seconds() + self.timeout
        while True:
            server = yield self._call(self._compute.server, server_id)
            if server is None or server["status"] == "DELETED":
                self.log.info("Nova server {server} of instance {name} deleted", server=server_id, name=name)
                return
            if self._reactor.seconds() >= deadline:
                raise NovaTimeout(
                    f"Nova server {server_id} of instance {name} was not gone within {self.timeout:g} s "
                    f"(still {server['status']})"
                )
            yield deferLater(self._reactor, min(self.poll, max(deadline - self._reactor.seconds(), 0)),
                             lambda: None)
