"""
The confinement every container gets unless an operator loosens it (issue
18's safe defaults, after Kubernetes' "restricted" profile): a pids limit,
the raw-socket capability dropped, no privilege gained through setuid, and a
memory limit for a container created without one (so that memory quotas and
an instance's room count every container).

Applied to a create's spec before it is placed, so that what the engine gets
is what inspect shows and what quotas count.  A member may ask for less
(a lower pids limit, its own memory limit), never for more; an admin's own
values stand.  Pure functions.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Confinement:
    """
    The operator's defaults (``--default-pids-limit``, ``--default-memory``,
    ``--drop-net-raw``, ``--no-new-privileges``); 0 for a limit means none.
    """

    pids_limit: int = 4096
    memory_mib: int = 512
    drop_net_raw: bool = True
    no_new_privileges: bool = True


#: SecurityOpt entries that set no-new-privileges one way or the other
_NNP = ("no-new-privileges",)


def _sets_nnp(entry):
    return isinstance(entry, str) and entry.split("=", 1)[0].split(":", 1)[0] in _NNP


def confine(spec, confinement, admin=False):
    """
    ``spec`` (a create's, as the APIs build it: ``memory`` in MiB and the
    Docker options' ``docker_config``) with the defaults applied; a new dict.
    """
    spec = dict(spec)
    if confinement.memory_mib > 0 and not spec.get("memory"):
        spec["memory"] = confinement.memory_mib
    docker_config = dict(spec.get("docker_config") or {})
    host = dict(docker_config.get("HostConfig") or {})
    if confinement.pids_limit > 0:
        given = host.get("PidsLimit")
        if admin:
            if given is None or given == 0:
                host["PidsLimit"] = confinement.pids_limit
        elif not isinstance(given, int) or given <= 0 or given > confinement.pids_limit:
            # (0 and -1 are "unlimited" to the engine)
            host["PidsLimit"] = confinement.pids_limit
    if confinement.drop_net_raw:
        dropped = list(host.get("CapDrop") or [])
        added = {c.upper().removeprefix("CAP_") for c in host.get("CapAdd") or []}
        named = {c.upper().removeprefix("CAP_") for c in dropped}
        if "NET_RAW" not in added and not named & {"NET_RAW", "ALL"}:
            host["CapDrop"] = dropped + ["NET_RAW"]
    if confinement.no_new_privileges:
        options = list(host.get("SecurityOpt") or [])
        if not (admin and any(_sets_nnp(o) for o in options)) and "no-new-privileges" not in options:
            options = [o for o in options if not _sets_nnp(o)] + ["no-new-privileges"]
            host["SecurityOpt"] = options
    if host:
        docker_config.setdefault("Config", {})
        docker_config["HostConfig"] = host
        spec["docker_config"] = docker_config
    return spec


def update_within(changes, confinement, admin=False):
    """
    An update's resource ``changes`` (Docker's field names) held to the
    same bounds: a member's pids limit no higher than the default.
    """
    limit = changes.get("PidsLimit")
    if admin or confinement.pids_limit <= 0 or limit is None:
        return changes
    if limit <= 0 or limit > confinement.pids_limit:
        return dict(changes, PidsLimit=confinement.pids_limit)
    return changes
