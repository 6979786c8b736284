"""
The agent's own credential where the control plane is the agents'
certificate authority: a key made here and kept in the state directory
(``agent.key``, 0600), the certificate the control plane signed for it at
enrollment (``agent.crt``), and the TLS endpoint that presents it.

An agent without a certificate dials with the CA's certificate alone (it
verifies the control plane), enrolls with its one-time token, stores what
it is given and dials again; from then on it presents the certificate and
needs no token.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet.defer import fail
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from zope.interface import implementer

KEY = "agent.key"
CERT = "agent.crt"

#: Ask for a new certificate when the agent's own has less than this left
#: (the control plane's ``csvc.agents.tls.RENEW_BEFORE``).
RENEW_BEFORE = datetime.timedelta(days=10)


class IdentityError(Exception):
    """
    The state directory or a certificate the control plane sent is not
    usable (the message says why).
    """


def _write(path, data, mode):
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(path + ".tmp", path)


def parse_connect(connect):
    """
    ``(host, port)`` of a ``tls:HOST:PORT`` endpoint string, the only form
    an enrolling agent dials (it adds the trust and its certificate itself).
    """
    parts = connect.split(":")
    if len(parts) != 3 or parts[0] != "tls" or not parts[1] or not parts[2].isdigit():
        raise IdentityError(f"--connect {connect!r}: with --ca-cert it is tls:HOST:PORT and nothing else")
    return parts[1], int(parts[2])


class AgentIdentity:
    """
    The key and certificate in ``state_dir``; ``ca_path`` is the control
    plane's CA certificate (PEM).  File reads and writes are a few hundred
    bytes, once per connection or enrollment.
    """

    def __init__(self, state_dir, ca_path):
        self.state_dir = state_dir
        self.ca_path = ca_path
        self._key_path = os.path.join(state_dir, KEY)
        self._cert_path = os.path.join(state_dir, CERT)
        #: the certificate as last read or stored
        self._cert = None

    def _read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def ca_pem(self):
        pem = self._read(self.ca_path)
        if pem is None:
            raise IdentityError(f"{self.ca_path} is missing (the control plane's ca.pem)")
        return pem

    def certificate(self):
        """
        The agent's certificate (``x509.Certificate``), or None before it
        has enrolled.
        """
        if self._cert is None:
            pem = self._read(self._cert_path)
            if pem is None or self._read(self._key_path) is None:
                return None
            self._cert = x509.load_pem_x509_certificate(pem)
        return self._cert

    def _key(self):
        """
        The agent's private key, made (and written 0600) on first use; the
        same key across enrollment attempts and renewals until a
        certificate for a new one is stored.
        """
        pem = self._read(self._key_path)
        if pem is not None:
            return serialization.load_pem_private_key(pem, password=None)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        _write(self._key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), 0o600)
        return key

    def request(self):
        """
        A certificate signing request (PEM bytes) for the agent's key, with
        an empty subject: the control plane names the instance itself.
        """
        key = self._key()
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.PEM)

    def store(self, pem):
        """
        Keep the certificate the control plane signed: it must be for this
        agent's key and issued by the CA the agent trusts.
        """
        try:
            cert = x509.load_pem_x509_certificate(pem)
            ca = x509.load_pem_x509_certificate(self.ca_pem())
            cert.verify_directly_issued_by(ca)
        except Exception as exc:
            raise IdentityError(f"the control plane sent an unusable certificate: {exc}") from None
        mine = self._key().public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = cert.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        if mine != theirs:
            raise IdentityError("the control plane sent a certificate for another key")
        _write(self._cert_path, pem, 0o644)
        self._cert = cert
        return cert

    def renewal_due(self, now):
        """
        Whether the certificate expires within ``RENEW_BEFORE`` of ``now``
        (an aware datetime).
        """
        cert = self.certificate()
        return cert is not None and cert.not_valid_after_utc - now < RENEW_BEFORE

    def client_options(self, host):
        """
        TLS options for dialing ``host``: trust the CA, present the agent's
        certificate once it has one.
        """
        ca = Certificate.loadPEM(self.ca_pem())
        client = None
        if self.certificate() is not None:
            client = PrivateCertificate.loadPEM(self._read(self._cert_path) + self._read(self._key_path))
        return optionsForClientTLS(host, trustRoot=ca, clientCertificate=client)


@implementer(IStreamClientEndpoint)
class IdentityEndpoint:
    """
    A TLS client endpoint to ``host:port`` that reads the agent's identity
    at every connection: the first after enrollment presents the new
    certificate.
    """

    def __init__(self, reactor, host, port, identity):
        self._reactor = reactor
        self._host = host
        self._port = port
        self._identity = identity

    def connect(self, protocolFactory):
        try:
            options = self._identity.client_options(self._host)
        except Exception as exc:
            return fail(exc)
        return wrapClientTLS(options, HostnameEndpoint(self._reactor, self._host, self._port)).connect(
            protocolFactory
        )
