"""
TLS on the agent port: the deployment's own small certificate authority
(made by ``csvc-manage tls``), the control plane's TLS options, and the
endpoint string an agent dials with.

A TLS directory holds::

    ca.pem                        the CA certificate (the only ``.pem`` file, so
                                  the directory is itself a ``trustRoots=``
                                  for Twisted's ``tls:`` client endpoint)
    ca.key                        the CA's key (keep it off agent hosts)
    server.crt, server.key        the control plane's certificate
    agent-NAME.crt, agent-NAME.key  an agent's client certificate
                                  (``agent-local`` is the local provider's)

Keys are written 0600.  An agent host needs ``ca.pem`` and its own pair only.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.protocols.tls import TLSMemoryBIOFactory

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
#: The client certificate the local provider's agents present.
LOCAL_AGENT = "local"

_DAYS = 3650
_SKEW = datetime.timedelta(minutes=5)


class TLSDirectoryError(Exception):
    """
    The TLS directory lacks a file it needs (the message says which).
    """


def agent_files(directory, name):
    """
    ``(certificate, key)`` paths of agent ``name``'s client certificate.
    """
    return os.path.join(directory, f"agent-{name}.crt"), os.path.join(directory, f"agent-{name}.key")


def _write(path, data, secret=False):
    mode = 0o600 if secret else 0o644
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(path + ".tmp", path)
    return path


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise TLSDirectoryError(f"{path} is missing (csvc-manage tls init makes it)") from None


def _load_ca(directory):
    cert = x509.load_pem_x509_certificate(_read(os.path.join(directory, CA_CERT)))
    key = serialization.load_pem_private_key(_read(os.path.join(directory, CA_KEY)), password=None)
    return cert, key


def _builder(subject, issuer, public_key, now):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + datetime.timedelta(days=_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _issue_leaf(directory, common_name, usage, names, cert_path, key_path, now):
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), ca_cert.subject,
                 key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key), secret=True)
    _write(cert_path, _cert_pem(cert))
    return [cert_path, key_path]


def _general_name(host):
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def init(directory, hosts=(), now=None):
    """
    Make the CA (unless the directory has one already), the control plane's
    certificate for 127.0.0.1, localhost and ``hosts``, and the local
    provider's agent certificate.  Returns the paths written.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    written = []
    if not os.path.exists(os.path.join(directory, CA_KEY)):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csvc agents CA")])
        cert = (
            _builder(name, name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        written.append(_write(os.path.join(directory, CA_KEY), _key_pem(key), secret=True))
        written.append(_write(os.path.join(directory, CA_CERT), _cert_pem(cert)))
    names = []
    for host in ("127.0.0.1", "localhost", *hosts):
        name = _general_name(host)
        if name not in names:
            names.append(name)
    written += _issue_leaf(
        directory, "csvc control plane", ExtendedKeyUsageOID.SERVER_AUTH, names,
        os.path.join(directory, SERVER_CERT), os.path.join(directory, SERVER_KEY), now,
    )
    written += issue_agent(directory, LOCAL_AGENT, now=now)
    return written


def issue_agent(directory, name, now=None):
    """
    A client certificate for agent ``name``, signed by the directory's CA.
    Returns the paths written.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cert_path, key_path = agent_files(directory, name)
    return _issue_leaf(
        directory, f"csvc agent {name}", ExtendedKeyUsageOID.CLIENT_AUTH, [], cert_path, key_path, now
    )


def server_options(directory):
    """
    The control plane's TLS options: its certificate, and agents must present
    a client certificate signed by the directory's CA.
    """
    server = PrivateCertificate.loadPEM(
        _read(os.path.join(directory, SERVER_CERT)) + _read(os.path.join(directory, SERVER_KEY))
    )
    ca = Certificate.loadPEM(_read(os.path.join(directory, CA_CERT)))
    return server.options(ca)


def server_factory(directory, factory):
    """
    ``factory`` behind TLS with ``server_options``, for a plain TCP endpoint.
    """
    return TLSMemoryBIOFactory(server_options(directory), False, factory)


def agent_endpoint(host, port, directory, name=LOCAL_AGENT):
    """
    The ``tls:`` client endpoint string an agent dials with: it trusts the
    directory's CA and presents ``agent-NAME``'s certificate.
    """
    cert_path, key_path = agent_files(directory, name)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return ":".join(
        [
            "tls",
            quoteStringArgument(host),
            str(port),
            "trustRoots=" + quoteStringArgument(os.path.abspath(directory)),
            "certificate=" + quoteStringArgument(os.path.abspath(cert_path)),
            "privateKey=" + quoteStringArgument(os.path.abspath(key_path)),
        ]
    )
