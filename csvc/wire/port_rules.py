"""
Where a member's container may publish its ports on an instance: the
instance's rules, which its agent applies to every create
(``docker_config.merge``; a refusal is the create's 400 naming it).

A binding's ``HostIp`` is one of the instance's public addresses (the
operator's ``--published-address``; without one, any address but the
instance's host-only ones: loopback, link-local, multicast); its
``HostPort`` is in the operator's range (``--published-ports``) and is
never one of the control plane's or the agent's ports.  The bindings are
rebuilt from what is checked (only ``HostIp`` and ``HostPort``, as strings),
never passed on as the client sent them.
"""

import ipaddress
import re
from dataclasses import dataclass, field

#: Docker's container port key: ``80``, ``80/tcp``, ``53/udp``, ``9/sctp``.
_PORT_KEY = re.compile(r"([0-9]{1,5})(?:/(tcp|udp|sctp))?")
#: A host port or a range of them (Docker's ``8000-8010``).
_HOST_PORT = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")
#: Linux's default ephemeral range, where the engine picks a port none was
#: given for (``-p 80``, ``-P``).
EPHEMERAL = (32768, 60999)
#: Most container ports, and bindings in all, one create may publish: the
#: checks stay linear and small whatever a client sends.
MAX_BINDINGS = 1024
#: Wildcard addresses: every address of the instance.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class PortRefused(ValueError):
    """
    A binding the rules refuse.  ``malformed``: the binding is not one
    (a 400), else it is one no member may have (a 403).
    """

    def __init__(self, message, malformed=False):
        super().__init__(message)
        self.malformed = malformed


@dataclass(frozen=True)
class PortRules:
    #: The instance's public addresses a port may be published on; empty:
    #: all its addresses (the engine's wildcard), host-only ones refused.
    addresses: tuple = ()
    low: int = 1024
    high: int = 65535
    #: Ports never published (the control plane's, the agent's).
    reserved: frozenset = field(default_factory=frozenset)

    @classmethod
    def from_options(cls, published_address=None, published_ports=None, reserved=()):
        """
        The rules of an operator's options: ``published_address`` a
        comma-separated list of addresses (``0.0.0.0``, empty or None: all),
        ``published_ports`` ``LOW-HIGH`` (None: 1024-65535), ``reserved``
        ports.  ValueError naming what is wrong.
        """
        addresses = []
        for text in (published_address or "").split(","):
            text = text.strip()
            if text in _WILDCARDS:
                continue
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise ValueError(f"published address {text!r} is not an IP address") from None
            if _host_only(address):
                raise ValueError(f"published address {text} is one of the host's own (loopback, link-local)")
            addresses.append(str(address))
        low, high = parse_range(published_ports or "1024-65535")
        return cls(tuple(addresses), low, high, frozenset(int(p) for p in reserved if p))


def parse_range(text):
    """
    ``(low, high)`` of ``LOW-HIGH`` (or one port), 1-65535; ValueError.
    """
    match = _HOST_PORT.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"port range {text!r} is not LOW-HIGH")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"port range {text!r} must lie within 1-65535, low first")
    return low, high


def _host_only(address):
    return address.is_loopback or address.is_link_local or address.is_multicast or (
        address.version == 6 and address.ipv4_mapped is not None and _host_only(address.ipv4_mapped))


def _host_ip(where, value, rules):
    """
    The checked ``HostIp``: a wildcard becomes the instance's first public
    address when the operator named some.
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PortRefused(f"{where}.HostIp must be a string", malformed=True)
    if value.strip() in _WILDCARDS:
        return rules.addresses[0] if rules.addresses else value.strip()
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        raise PortRefused(f"{where}.HostIp {value[:64]!r} is not an IP address", malformed=True) from None
    if _host_only(address):
        raise PortRefused(f"{where}.HostIp {address}: ports are published on the instance's public addresses, "
                          "never on its loopback, link-local or multicast ones")
    if rules.addresses and str(address) not in rules.addresses:
        raise PortRefused(f"{where}.HostIp {address}: ports are published on {', '.join(rules.addresses)} only")
    return str(address)


def _host_port(where, value, rules):
    """
    The checked ``HostPort``: within the operator's range, none reserved;
    an empty one stays the engine's choice when the engine's ephemeral
    range is allowed, else becomes the operator's range.
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PortRefused(f"{where}.HostPort must be a string", malformed=True)
    value = value.strip()
    if not value:
        # (The engine never picks a port that is in use, as csvc's own are.)
        if rules.low <= EPHEMERAL[0] and EPHEMERAL[1] <= rules.high:
            return ""
        return f"{rules.low}-{rules.high}"
    match = _HOST_PORT.fullmatch(value)
    if not match:
        raise PortRefused(f"{where}.HostPort {value[:64]!r} is not a port or a range of ports", malformed=True)
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 1 <= low <= high <= 65535:
        raise PortRefused(f"{where}.HostPort {value}: ports are 1-65535, the lower first", malformed=True)
    if low < rules.low or high > rules.high:
        raise PortRefused(f"{where}.HostPort {value}: ports are published within {rules.low}-{rules.high}")
    taken = sorted(p for p in rules.reserved if low <= p <= high)
    if taken:
        raise PortRefused(f"{where}.HostPort {value}: port {taken[0]} is the instance's own (csvc's)")
    return value if match.group(2) else str(low)


def rebuild(port_bindings, rules, field_name="HostConfig.PortBindings"):
    """
    ``port_bindings`` (Docker's ``{"80/tcp": [{"HostIp", "HostPort"}]}``)
    checked against ``rules`` and rebuilt: a new dict of new lists of
    ``{"HostIp", "HostPort"}`` only.  PortRefused naming the first binding
    refused.
    """
    if port_bindings is None:
        return {}
    if not isinstance(port_bindings, dict):
        raise PortRefused(f"{field_name} must be an object", malformed=True)
    if len(port_bindings) > MAX_BINDINGS:
        raise PortRefused(f"{field_name}: at most {MAX_BINDINGS} ports", malformed=True)
    out = {}
    count = 0
    for key, bindings in port_bindings.items():
        match = _PORT_KEY.fullmatch(key) if isinstance(key, str) else None
        if not match or not 1 <= int(match.group(1)) <= 65535:
            raise PortRefused(f"{field_name}: {str(key)[:64]!r} is not a container port (80, 80/tcp, 53/udp)",
                              malformed=True)
        port = f"{int(match.group(1))}/{match.group(2) or 'tcp'}"
        if bindings is None:
            bindings = []
        if not isinstance(bindings, list):
            raise PortRefused(f"{field_name}.{port} must be a list of {{HostIp, HostPort}}", malformed=True)
        count += len(bindings)
        if count > MAX_BINDINGS:
            raise PortRefused(f"{field_name}: at most {MAX_BINDINGS} bindings", malformed=True)
        rebuilt = out.setdefault(port, [])
        for binding in bindings:
            if not isinstance(binding, dict):
                raise PortRefused(f"{field_name}.{port} must be a list of {{HostIp, HostPort}}", malformed=True)
            unknown = sorted(str(k)[:32] for k in binding if k not in ("HostIp", "HostPort"))
            if unknown:
                raise PortRefused(f"{field_name}.{port}: unknown field {unknown[0]!r} (HostIp, HostPort)",
                                  malformed=True)
            rebuilt.append({"HostIp": _host_ip(f"{field_name}.{port}", binding.get("HostIp"), rules),
                            "HostPort": _host_port(f"{field_name}.{port}", binding.get("HostPort"), rules)})
    return out


def check_publish_all(publish_all, rules):
    """
    ``PublishAllPorts`` (``-P``) lets the engine pick ports in its ephemeral
    range on every address: refused when the rules would not allow that.
    """
    if publish_all is None or publish_all is False:
        return
    if publish_all is not True:
        raise PortRefused("HostConfig.PublishAllPorts must be a boolean", malformed=True)
    if rules.addresses or rules.low > EPHEMERAL[0] or rules.high < EPHEMERAL[1]:
        raise PortRefused(f"HostConfig.PublishAllPorts: the engine would pick ports outside what this service "
                          f"publishes ({', '.join(rules.addresses) or 'any address'}, ports {rules.low}-"
                          f"{rules.high}); publish each port with -p instead")


def reserved_ports(text):
    """
    The ports of ``--reserved-ports`` (comma-separated), each 1-65535;
    ValueError naming what is wrong.
    """
    ports = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ValueError(f"reserved port {part!r} is not a port (1-65535)")
        ports.append(int(part))
    return ports


def listening_port(description):
    """
    The port of a server endpoint string (``tcp:PORT``, ``tcp:port=P``,
    ``ssl:PORT:...``), or None.
    """
    kind, _sep, rest = description.partition(":")
    if kind not in ("tcp", "ssl", "tls"):
        return None
    for part in rest.split(":"):
        name, eq, value = part.partition("=")
        if eq and name == "port" and value.isdigit():
            return int(value)
        if not eq and part.isdigit():
            return int(part)
    return None


def endpoint_port(description):
    """
    The port of a client endpoint string (``tcp:HOST:PORT``,
    ``tcp:host=H:port=P``, ``tls:...``), or None (``unix:``...).
    """
    kind, _sep, rest = description.partition(":")
    if kind not in ("tcp", "ssl", "tls"):
        return None
    positional = []
    for part in rest.split(":"):
        name, eq, value = part.partition("=")
        if eq and name == "port" and value.isdigit():
            return int(value)
        if not eq:
            positional.append(part)
    return int(positional[1]) if len(positional) > 1 and positional[1].isdigit() else None
