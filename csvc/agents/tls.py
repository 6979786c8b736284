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

When the control plane's directory holds ``ca.key`` it is also the agents'
certificate authority (``AgentAuthority``): an agent enrolls once with its
instance's one-time token and a certificate signing request, and is given a
certificate naming its instance (``OU=csvc instances, CN=<instance uuid>``,
valid ``AGENT_CERT_DAYS``); from then on it registers by presenting it.
"""

import datetime
import hashlib
import ipaddress
import os
import uuid as uuidlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate
from twisted.protocols.tls import TLSMemoryBIOFactory

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
#: The client certificate the local provider's agents present.
LOCAL_AGENT = "local"

_DAYS = 3650
_SKEW = datetime.timedelta(minutes=5)


#: The organizational unit of the certificates issued at enrollment.
INSTANCE_UNIT = "csvc instances"
#: How long a certificate issued at enrollment is valid.
AGENT_CERT_DAYS = 30
#: An agent asks for a new certificate when its own has less than this left.
RENEW_BEFORE = datetime.timedelta(days=10)
#: The largest certificate signing request accepted (PEM bytes).
CSR_MAX = 8 * 1024
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1)


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


def can_enroll(directory):
    """
    Whether the control plane signs agents' certificates: its TLS directory
    holds the CA's key.
    """
    return os.path.exists(os.path.join(directory, CA_KEY))


def server_options(directory):
    """
    The control plane's TLS options: its certificate, and a client
    certificate an agent presents must be signed by the directory's CA.
    Agents must present one, unless the directory holds ``ca.key``: then an
    agent without one yet may connect, to enroll (and nothing else: see
    ``csvc.agents.hub``).
    """
    server = PrivateCertificate.loadPEM(
        _read(os.path.join(directory, SERVER_CERT)) + _read(os.path.join(directory, SERVER_KEY))
    )
    ca = Certificate.loadPEM(_read(os.path.join(directory, CA_CERT)))
    return CertificateOptions(
        privateKey=server.privateKey.original,
        certificate=server.original,
        verify=True,
        caCerts=[ca.original],
        requireCertificate=not can_enroll(directory),
    )


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


class EnrollmentRefused(Exception):
    """
    A certificate signing request or a presented certificate is not
    acceptable (the message says why).
    """


def fingerprint(cert):
    """
    The SHA-256 of a certificate's DER, in hex: what the store keeps of the
    certificate issued to an instance.
    """
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _now_of(clock):
    return datetime.datetime.fromtimestamp(clock.seconds(), datetime.timezone.utc)


def instance_subject(instance_uuid):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, INSTANCE_UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, instance_uuid),
        ]
    )


def _check_key(public_key):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, _EC_CURVES):
            return
        raise EnrollmentRefused(f"the request's key is on curve {public_key.curve.name}: use P-256 or P-384")
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size >= 2048:
            return
        raise EnrollmentRefused(f"the request's RSA key has {public_key.key_size} bits: at least 2048 are needed")
    raise EnrollmentRefused("the request's key is neither EC (P-256, P-384) nor RSA")


class AgentAuthority:
    """
    The agents' certificate authority on the control plane: signs an
    enrolling agent's request with a certificate naming its instance, and
    says which instance a presented certificate names.

    Only the request's public key is taken (once its signature proves the
    agent holds the private key): the subject, the extensions and the
    validity are csvc's own.  ``clock`` is an ``IReactorTime``.
    """

    def __init__(self, ca_cert, ca_key, clock, days=AGENT_CERT_DAYS):
        self._ca_cert = ca_cert
        self._ca_key = ca_key
        self._clock = clock
        self.validity = datetime.timedelta(days=days)

    @classmethod
    def from_directory(cls, directory, clock, days=AGENT_CERT_DAYS):
        """
        The authority of a ``csvc-manage tls`` directory, or None when it
        does not hold ``ca.key`` (agents' certificates are then made by hand).
        """
        if not can_enroll(directory):
            return None
        ca_cert, ca_key = _load_ca(directory)
        return cls(ca_cert, ca_key, clock, days)

    def sign(self, csr_pem, instance):
        """
        The PEM certificate for ``instance`` (a row: ``uuid``, ``name``) from
        the agent's request ``csr_pem`` (bytes).  EnrollmentRefused when the
        request is too large, not a request, not signed by its own key, of
        a weak key, or names a subject other than this instance.
        """
        if len(csr_pem) > CSR_MAX:
            raise EnrollmentRefused(f"the certificate signing request is larger than {CSR_MAX} bytes")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise EnrollmentRefused("not a PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise EnrollmentRefused("the certificate signing request is not signed by its own key")
        asked = csr.subject
        if len(asked) and asked not in (
            instance_subject(instance["uuid"]),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, instance["uuid"])]),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, instance["name"])]),
        ):
            raise EnrollmentRefused(
                f"the request names the subject {asked.rfc4514_string()!r}, not instance {instance['name']}"
            )
        public_key = csr.public_key()
        _check_key(public_key)
        now = _now_of(self._clock)
        cert = (
            x509.CertificateBuilder()
            .subject_name(instance_subject(instance["uuid"]))
            .issuer_name(self._ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey), data_encipherment=False,
                    key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        return _cert_pem(cert)

    def identify(self, cert):
        """
        The instance uuid a presented certificate (``x509.Certificate``)
        names, or None when it is not one issued at enrollment (an
        operator's ``csvc-manage tls agent`` certificate).  EnrollmentRefused
        when it is not this CA's, not valid now, or names no instance.
        """
        try:
            cert.verify_directly_issued_by(self._ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise EnrollmentRefused("the certificate is not signed by this control plane's CA") from None
        now = _now_of(self._clock)
        if now < cert.not_valid_before_utc:
            raise EnrollmentRefused(f"the certificate is not valid before {cert.not_valid_before_utc.isoformat()}")
        if now > cert.not_valid_after_utc:
            raise EnrollmentRefused(f"the certificate expired at {cert.not_valid_after_utc.isoformat()}")
        subject = cert.subject
        units = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
        if units != [INSTANCE_UNIT]:
            return None
        names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if len(names) != 1 or subject != instance_subject(names[0]):
            raise EnrollmentRefused(f"the certificate's subject {subject.rfc4514_string()!r} names no instance")
        try:
            return str(uuidlib.UUID(names[0]))
        except ValueError:
            raise EnrollmentRefused(
                f"the certificate's subject {subject.rfc4514_string()!r} names no instance"
            ) from None
