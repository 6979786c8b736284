"""
The names and labels csvc gives containers and networks on a Docker engine:
how the agent tells its own containers, and each one's project, from the
rest on the engine.
"""

from csvc.agent import docker_config

#: csvc's labels all start so; a client's labels never do.
OWN_PREFIX = "csvc."

LABEL_UUID = "csvc.uuid"
LABEL_PROJECT = "csvc.project"
#: The instance whose control plane made the container: how a registration
#: tells its own engine containers from those of other instances (and
#: control planes) sharing the engine.
LABEL_INSTANCE = "csvc.instance"
LABEL_AUTO_REMOVE = "csvc.auto_remove"

#: The label of a project's default network (``docker_config.default_network``).
LABEL_DEFAULT_NETWORK = "csvc.default_network"


def is_own_label(key):
    """
    Whether a label's key is csvc's own (in any letter case).
    """
    return str(key)[:len(OWN_PREFIX)].lower() == OWN_PREFIX


def share_key(project_id):
    """
    A project's share key: its name as the engine's names spell it.
    """
    return docker_config.engine_volume(project_id, "")[len("csvc-"):-1]


def project_key(attrs):
    project = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_PROJECT)
    return share_key(project) if project else None


def engine_name(uuid):
    """
    The engine's name for a csvc container: unique per engine, whatever the
    tenant named it.
    """
    return f"csvc-{uuid}"
