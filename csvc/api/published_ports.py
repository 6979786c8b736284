"""
The control plane's wall for published ports: a create's
``HostConfig.PortBindings`` and ``PublishAllPorts`` checked against the
operator's rules (``csvc.wire.port_rules``, which the agent applies again)
and rebuilt; a 400 for what is not a binding, a 403 for a binding no member
may have (loopback, outside the operator's range, csvc's own ports).
"""

from csvc.wire.port_rules import PortRefused, PortRules, check_publish_all, rebuild
from csvc.api.schemas import BadRequest
from csvc.policy import Forbidden

__all__ = ["PortRules", "check", "rules_from_config"]


def _raised(exc):
    return BadRequest(str(exc)) if exc.malformed else Forbidden(str(exc))


def check(port_bindings, rules, publish_all=None):
    """
    ``port_bindings`` rebuilt under ``rules`` (a new dict of
    ``{"HostIp", "HostPort"}`` lists: what goes on to the agent), or
    BadRequest / Forbidden naming the first binding refused.
    """
    try:
        check_publish_all(publish_all, rules)
        return rebuild(port_bindings, rules)
    except PortRefused as exc:
        raise _raised(exc) from None


def rules_from_config(config, reserved=()):
    """
    The rules of the control plane's settings (``published-address``,
    ``published-ports``), with ``reserved`` (its API and agent ports)
    never published.  ValueError naming a bad setting.
    """
    return PortRules.from_options(config.get("published-address"), config.get("published-ports"), reserved)
