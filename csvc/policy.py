"""
Who may do what: one table of named rules, in the manner of oslo.policy's
defaults, and ``enforce``.

A rule is a check string of base checks joined by ``or``:

- ``project``: any authenticated member of a project;
- ``admin``: an admin as authentication says (csvc tokens made with
  ``--admin``; with Keystone, a system-scoped admin or the admin role in the
  configured admin project, never the admin role of any project);
- ``owner``: the target belongs to the caller's project;
- ``shared``: the target (an instance) is shared between projects.

A denied action is a 403 that names the rule.  Scoping comes first: another
project's container is not found (404) before any rule is asked about it.
"""



class Forbidden(Exception):
    """
    Policy does not allow it (403); the API maps it in ``csvc.api.errors``.
    """

#: rule -> check string
RULES = {
    "container:create": "project",
    # Placing on a named instance: an admin anywhere, a member on a shared
    # one or one created for its project.
    "container:create:instance": "admin or shared or owner",
    "container:list": "project",
    "container:list_all_projects": "admin",
    # Every action on one container (show, start, stop, kill, restart, wait,
    # logs, attach, exec, delete): the owner's project, or an admin.
    "container:get": "admin or owner",
    "container:delete": "owner",
    "container:force_delete": "admin or owner",
    # Docker create options that reach past the container onto the instance
    # (and from there to the agent): an admin's only.  Checked before
    # anything reaches the engine (csvc.api.docker_options).
    "container:create:privileged": "admin",
    "container:create:cap_add": "admin",
    "container:create:devices": "admin",
    "container:create:device_requests": "admin",
    "container:create:security_opt": "admin",
    "container:create:host_bind": "admin",
    "container:create:network_mode": "admin",
    "container:create:pid_mode": "admin",
    "container:create:ipc_mode": "admin",
    "container:create:uts_mode": "admin",
    "container:create:userns_mode": "admin",
    "container:create:sysctls": "admin",
    "container:create:cgroup_parent": "admin",
    "container:create:volume_driver": "admin",
    "container:create:runtime": "admin",
    # Resource limits that lift a process above its neighbours (real-time
    # priority and time, a negative nice, locked memory).
    "container:create:ulimits": "admin",
    # A project's named volumes (scoped by name on the engine).
    "volume:list": "project",
    "volume:create": "project",
    "volume:get": "project",
    "volume:delete": "project",
    # A project's networks (scoped by name on the engine).
    "network:list": "project",
    "network:create": "project",
    "network:get": "project",
    "network:delete": "project",
    "network:connect": "project",
    "instance:list": "admin",
    "instance:get": "admin",
    "instance:create": "admin",
    "instance:delete": "admin",
    "quota:get": "admin or owner",
    "quota:usage": "admin or owner",
    "quota:update": "admin",
    "quota:delete": "admin",
    # Webhook subscriptions: a project's own; another project's is not
    # found (404), and only an admin may look across projects.
    "subscription:create": "project",
    "subscription:list": "project",
    "subscription:list_all_projects": "admin",
    "subscription:delete": "admin or owner",
}

#: what each check needs, for the message of a denial
_NEEDS = {
    "project": "a project member",
    "admin": "an admin",
    "owner": "the target's own project",
    "shared": "a shared instance",
}


def _check(name, identity, target_project, target):
    if name == "project":
        return identity is not None
    if name == "admin":
        return bool(identity is not None and identity.is_admin)
    if name == "owner":
        return identity is not None and target_project is not None and target_project == identity.project_id
    if name == "shared":
        return bool(target and target.get("shared"))
    raise ValueError(f"unknown policy check {name!r}")


def checks(rule):
    """
    The base checks of a rule (any one of which allows it).
    """
    try:
        text = RULES[rule]
    except KeyError:
        raise ValueError(f"no policy rule {rule!r}") from None
    return [part.strip() for part in text.split(" or ")]


def allowed(rule, identity, target_project=None, target=None):
    return any(_check(name, identity, target_project, target) for name in checks(rule))


def enforce(rule, identity, target_project=None, target=None):
    """
    Raise ``Forbidden`` naming ``rule`` unless ``identity`` may do it to a
    target of ``target_project`` (and attributes ``target``, such as an
    instance's ``shared``).
    """
    if not allowed(rule, identity, target_project, target):
        needs = " or ".join(_NEEDS[name] for name in checks(rule))
        raise Forbidden(f"policy does not allow {rule} (it needs {needs})")
