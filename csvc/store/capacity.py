"""
An instance's room: its size (containers, memory in MiB, cpu in cores), what
the containers placed on it use, and whether one more fits.

Containers count against ``capacity`` whatever their state (a stopped one
may be started again there); memory and cpu are those of the *live*
containers (creating, created, running), the ones the engine may be running.
A container created without a memory or cpu limit counts as 0 of it: the
engine does not reserve anything for it either.  An instance whose memory or
cpu is not known (NULL: an operator's host whose agent has not reported yet)
is not limited in it.

``thd_usage`` is a unit of work for ``Store`` (plain data out), run inside
the placement's transaction; ``shortfall`` and ``never_fits`` are plain
arithmetic, tested on their own.
"""

from sqlalchemy import case, func, select

from csvc.store.models import containers

#: The states in which a container holds the memory and cpu it asked for.
LIVE = ("creating", "created", "running")

#: Allowance for cores summed as floats (0.1 + 0.2).
_EPSILON = 1e-9


class NoRoom(Exception):
    """
    No instance has room for the container (the message says why).
    """


class ContainerTooLarge(NoRoom):
    """
    The container asks for more memory or cpu than any instance it may go
    on has at all: it would never fit, waiting or not (a 400, not a 503).
    """

    def __init__(self, resource, wanted, largest, where):
        self.resource = resource
        self.wanted = wanted
        self.largest = largest
        unit = " MiB" if resource == "memory" else " cores"
        super().__init__(
            f"the container asks for {_number(wanted)}{unit} of {resource}, more than {where} has "
            f"({_number(largest)}{unit})"
        )


def _number(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        return round(value, 3)
    return value


def wanted(values):
    """
    What a container's row ``values`` asks of an instance.
    """
    return {"containers": 1, "memory": values.get("memory") or 0, "cpus": float(values.get("cpu") or 0)}


def empty_usage():
    return {"containers": 0, "live": 0, "memory": 0, "cpus": 0.0}


def thd_usage(conn, instance_uuids=None):
    """
    ``{instance_uuid: {"containers", "live", "memory", "cpus"}}``: how many
    containers each instance holds, how many are live, and the sums of the
    live ones' memory (MiB) and cpu (cores).  Instances holding nothing are
    left out.
    """
    is_live = containers.c.status.in_(LIVE)
    query = (
        select(
            containers.c.instance_uuid,
            func.count(),
            func.coalesce(func.sum(case((is_live, 1), else_=0)), 0),
            func.coalesce(func.sum(case((is_live, func.coalesce(containers.c.memory, 0)), else_=0)), 0),
            func.coalesce(func.sum(case((is_live, func.coalesce(containers.c.cpu, 0.0)), else_=0.0)), 0.0),
        )
        .where(containers.c.instance_uuid.is_not(None))
        .group_by(containers.c.instance_uuid)
    )
    if instance_uuids is not None:
        query = query.where(containers.c.instance_uuid.in_(list(instance_uuids)))
    return {
        uuid: {"containers": int(count), "live": int(live), "memory": int(memory), "cpus": float(cpus)}
        for uuid, count, live, memory, cpus in conn.execute(query)
    }


def usage_of(rows):
    """
    ``thd_usage``'s figures for one instance, from its container rows.
    """
    live = [r for r in rows if r["status"] in LIVE]
    return {
        "containers": len(rows),
        "live": len(live),
        "memory": sum(r.get("memory") or 0 for r in live),
        "cpus": float(sum(r.get("cpu") or 0.0 for r in live)),
    }


def size(instance):
    """
    An instance row's size: ``{"containers", "memory", "cpus"}`` (None where
    not known).
    """
    return {"containers": instance["capacity"], "memory": instance.get("memory"), "cpus": instance.get("cpus")}


def shortfall(size, used, want):
    """
    None when ``want`` fits beside ``used`` within ``size``, else a phrase
    naming the first resource short ("memory: 3072 of 4096 MiB in use, 2048
    asked").
    """
    if used["containers"] + want["containers"] > size["containers"]:
        return f"containers: {used['containers']} of {size['containers']} placed"
    memory = size.get("memory")
    if memory is not None and want["memory"] and used["memory"] + want["memory"] > memory:
        return f"memory: {used['memory']} of {memory} MiB in use, {want['memory']} asked"
    cpus = size.get("cpus")
    if cpus is not None and want["cpus"] and used["cpus"] + want["cpus"] > cpus + _EPSILON:
        return (
            f"cpu: {_number(round(used['cpus'], 3))} of {_number(cpus)} cores in use, "
            f"{_number(want['cpus'])} asked"
        )
    return None


def never_fits(sizes, want, where):
    """
    ``ContainerTooLarge`` when ``want`` exceeds every one of ``sizes`` in
    memory or cpu (even empty, none could hold it), else None.  ``sizes``
    must not be empty; ``where`` names them in the message ("any instance",
    "instance X").
    """
    for resource in ("memory", "cpus"):
        if not want[resource]:
            continue
        known = [s[resource] for s in sizes if s.get(resource) is not None]
        if len(known) < len(sizes):
            continue  # an instance not limited in it could take it
        if all(want[resource] > k + (_EPSILON if resource == "cpus" else 0) for k in known):
            return ContainerTooLarge(
                "memory" if resource == "memory" else "cpu", want[resource], max(known), where
            )
    return None
