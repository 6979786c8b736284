"""
The Docker Engine API's views of csvc's containers (``docker ps``'s
summaries, inspect, ports, mounts, networks) and the readings of Docker's
body fields into csvc's terms (environment, commands, CPUs, memory).
"""

from datetime import timezone

from csvc.wire import naming as agent_docker_config
from csvc.api.schemas import BadRequest


#: csvc status -> Docker's State.Status
DOCKER_STATUS = {
    "creating": "created",
    "created": "created",
    "running": "running",
    "exited": "exited",
    "error": "dead",
    "deleting": "removing",
}


def rfc3339(value):
    if value is None:
        return "0001-01-01T00:00:00Z"
    return value.isoformat(timespec="microseconds") + "Z"


def unix_time(value):
    if value is None:
        return 0
    return int(value.replace(tzinfo=timezone.utc).timestamp())


def ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = minutes // 60
    if hours < 48:
        return "About an hour" if hours == 1 else f"{hours} hours"
    return f"{hours // 24} days"


def env_list(environment):
    return [f"{k}={v}" for k, v in (environment or {}).items()]


def env_dict(entries, field="Env"):
    out = {}
    for item in entries or []:
        if not isinstance(item, str):
            raise BadRequest(f"{field}: entries must be strings of the form NAME=value")
        name, sep, value = item.partition("=")
        if not name:
            raise BadRequest(f"{field}: {item!r} has no variable name")
        if sep:
            out[name] = value
    return out


def string_list(value, field):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise BadRequest(f"{field}: must be a string or a list of strings")
    return value


def container_summary(row, now):
    status = DOCKER_STATUS.get(row["status"], row["status"])
    if status == "running":
        text = f"Up {ago(now - unix_time(row['started_at']))}"
    elif status in ("exited", "dead") and row["finished_at"] is not None:
        text = f"Exited ({row['exit_code'] if row['exit_code'] is not None else -1}) " \
               f"{ago(now - unix_time(row['finished_at']))} ago"
    elif status == "removing":
        # Left for its agent to remove (csvc.compute.service.delete).
        text = "Removal In Progress"
    else:
        text = "Created"
    command = " ".join((row.get("entrypoint") or []) + (row["command"] or []))
    return {
        "Id": row["engine_id"] or row["uuid"],
        "Names": ["/" + row["name"]],
        "Image": row["image"],
        # The CLI prints the image reference when no image id matches it.
        "ImageID": "",
        "Command": command,
        "Created": unix_time(row["created_at"]),
        "State": status,
        "Status": text,
        "Ports": [],
        "Labels": row["labels"] or {},
        "SizeRw": 0,
        "SizeRootFs": 0,
        "HostConfig": {"NetworkMode": ((row.get("docker_config") or {}).get("HostConfig") or {}).get(
            "NetworkMode") or "default"},
        "NetworkSettings": {"Networks": networks_of(row)},
        "Mounts": volume_mounts(row.get("docker_config") or {}, row["uuid"]),
    }


def container_inspect(row):
    return with_options(_base_inspect(row), row)


def _base_inspect(row):
    status = DOCKER_STATUS.get(row["status"], row["status"])
    command = row["command"] or []
    entrypoint = row.get("entrypoint") or []
    argv = entrypoint + command
    return {
        "Id": row["engine_id"] or row["uuid"],
        "Created": rfc3339(row["created_at"]),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": status,
            "Running": status == "running",
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": status == "dead",
            "Pid": 0,
            "ExitCode": row["exit_code"] if row["exit_code"] is not None else 0,
            "Error": row["status_reason"] or "",
            "StartedAt": rfc3339(row["started_at"]),
            "FinishedAt": rfc3339(row["finished_at"]),
        },
        "Image": row["image"],
        "Name": "/" + row["name"],
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": {
            "LogConfig": {"Type": "json-file", "Config": {}},
            "AutoRemove": bool(row["remove_on_exit"]),
            "Memory": (row["memory"] or 0) * 1024 * 1024,
            "NanoCpus": int((row["cpu"] or 0) * 1e9),
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "NetworkMode": "default",
        },
        "Mounts": [],
        "Config": {
            "Hostname": (row["engine_id"] or row["uuid"])[:12],
            "Domainname": "",
            "User": "",
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": bool(row["tty"]),
            "OpenStdin": bool(row["interactive"]),
            "StdinOnce": bool(row["stdin_once"]) if row["stdin_once"] is not None else bool(row["interactive"]),
            "Env": env_list(row["environment"]),
            "Cmd": command or None,
            "Image": row["image"],
            "Volumes": None,
            "WorkingDir": row["workdir"] or "",
            "Entrypoint": entrypoint or None,
            "Labels": row["labels"] or {},
        },
        "NetworkSettings": {"Networks": {}, "Ports": {}},
        "Node": {"ID": row["instance_uuid"], "Name": row["instance_uuid"]},
    }


def port_list(ports):
    """
    ``docker ps``'s ``Ports`` from inspect's ``NetworkSettings.Ports``.
    """
    out = []
    for port, bindings in sorted(ports.items()):
        number, _, kind = port.partition("/")
        for binding in bindings or []:
            entry = {"PrivatePort": int(number), "Type": kind or "tcp"}
            if binding.get("HostPort"):
                entry.update(IP=binding.get("HostIp") or "", PublicPort=int(binding["HostPort"]))
            out.append(entry)
    return out


#: Docker's CFS period when a CpuQuota comes without one (100 ms).
CPU_PERIOD = 100_000


def cpus_of(host):
    """
    The CPUs a HostConfig's limit amounts to, as the quota counts them:
    ``NanoCpus``, else ``CpuQuota`` over ``CpuPeriod``; None without a limit
    (or with values of the wrong type, which validation reports).
    """
    nano = host.get("NanoCpus")
    if isinstance(nano, int) and not isinstance(nano, bool) and nano > 0:
        return nano / 1e9
    quota, period = host.get("CpuQuota"), host.get("CpuPeriod") or CPU_PERIOD
    if isinstance(quota, int) and not isinstance(quota, bool) and quota > 0 and isinstance(period, int) \
            and period > 0:
        return quota / period
    return None


def memory_mib(memory):
    """
    A memory limit in bytes as the MiB the quota counts (at least Docker's
    minimum of 6 MiB).
    """
    return max(6, int(memory) // (1024 * 1024))


def engine_words(message, row, ident):
    """
    The engine's message with its name of the container (``csvc-<uuid>``)
    replaced by the one the client used.
    """
    return message.replace(f"csvc-{row['uuid']}", ident)


def has_healthcheck(row):
    test = (((row.get("docker_config") or {}).get("Config") or {}).get("Healthcheck") or {}).get("Test")
    return bool(test) and test != ["NONE"]


def stop_timeout(row):
    """
    Docker's default for a stop without ``t``: the container's StopTimeout,
    else 10 seconds.
    """
    value = ((row.get("docker_config") or {}).get("Config") or {}).get("StopTimeout")
    return value if isinstance(value, int) else 10


def volume_mounts(docker_config, container_uuid):
    """
    Inspect's (and the listing's) ``Mounts`` for a container's binds, named
    volumes and anonymous volumes of ``Config.Volumes`` (named by csvc, see
    ``csvc.agent.docker_config``; an image's own ``VOLUME`` paths are known
    only to its instance, and are not here).
    """
    host = docker_config.get("HostConfig") or {}
    out = []
    for entry in host.get("Binds") or []:
        parts = entry.split(":")
        options = parts[2].split(",") if len(parts) > 2 else []
        out.append({"Type": "bind" if parts[0].startswith("/") else "volume",
                    "Name": "" if parts[0].startswith("/") else parts[0],
                    "Source": parts[0] if parts[0].startswith("/") else "",
                    "Destination": parts[1], "Driver": "local", "Mode": ",".join(options),
                    "RW": "ro" not in options, "Propagation": ""})
    for mount in host.get("Mounts") or []:
        kind = mount.get("Type") or "volume"
        out.append({"Type": kind, "Name": mount.get("Source", "") if kind == "volume" else "",
                    "Source": mount.get("Source", "") if kind == "bind" else "",
                    "Destination": mount["Target"], "Driver": "local" if kind == "volume" else "",
                    "Mode": "", "RW": not mount.get("ReadOnly"), "Propagation": ""})
    for target in agent_docker_config.anonymous_targets((docker_config.get("Config") or {}).get("Volumes"), host):
        out.append({"Type": "volume", "Name": agent_docker_config.anonymous_volume(container_uuid, target),
                    "Source": "", "Destination": target, "Driver": "local", "Mode": "", "RW": True,
                    "Propagation": ""})
    return out


def networks_of(row):
    """
    The project's networks a container is on (as created, connected and
    disconnected through csvc), known there by its name too: inspect's and
    the listing's ``NetworkSettings.Networks``.
    """
    endpoints = ((row.get("docker_config") or {}).get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    return {
        network: {"Aliases": [row["name"]] + [a for a in endpoint.get("Aliases") or [] if a != row["name"]],
                  "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "MacAddress": ""}
        for network, endpoint in endpoints.items()
    }


def with_options(inspected, row):
    """
    Inspect with the client's honoured options reflected in ``Config`` and
    ``HostConfig`` (and ``Mounts``, ``NetworkSettings.Ports``).
    """
    docker_config = row.get("docker_config")
    if not docker_config:
        return inspected
    config = docker_config.get("Config") or {}
    host = docker_config.get("HostConfig") or {}
    inspected["Config"].update(config)
    inspected["HostConfig"].update(host)
    if (host.get("CpuQuota") or host.get("CpuPeriod")) and not host.get("NanoCpus"):
        # The quota's cpu came from the CFS quota, not from NanoCpus.
        inspected["HostConfig"]["NanoCpus"] = 0
    restart = host.get("RestartPolicy")
    if restart and not restart.get("Name"):
        inspected["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    inspected["Mounts"] = volume_mounts(docker_config, row["uuid"])
    networks = networks_of(row)
    if networks:
        inspected["NetworkSettings"]["Networks"] = networks
    if host.get("PortBindings"):
        inspected["NetworkSettings"]["Ports"] = {port: bindings for port, bindings in host["PortBindings"].items()}
    return inspected


def multiplexed_frames(stream, data):
    from csvc.stdio.frames import encode_frame

    return encode_frame(stream, data) if data else b""


def full_image(image):
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"
