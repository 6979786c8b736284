"""
Agents' certificates from the control plane's CA (issue 18, point 8): the
authority signs a request with a certificate naming the instance, only from
the request's key; a token is used once; an agent registers by the
certificate it was issued, and by nothing else once the token is used.

The hub runs on the real store (SQLite, units of work on the calling
thread); links are stand-ins that present a certificate or none.
"""

import datetime
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage

from csvc.wire import commands
from csvc.agent.identity import AgentIdentity, IdentityError, parse_connect
from csvc.agent.service import Options
from csvc.agents import tls as agenttls
from csvc.agents.hub import AgentHub
from csvc.store import instances
from csvc.store.db import make_engine, upgrade
from tests.api.conftest import SynchronousStore, result_of

DAY = 24 * 3600


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(time.time())
    return clock


@pytest.fixture
def tls_dir(tmp_path):
    directory = str(tmp_path / "tls")
    agenttls.init(directory)
    return directory


@pytest.fixture
def authority(tls_dir, clock):
    return agenttls.AgentAuthority.from_directory(tls_dir, clock)


@pytest.fixture
def store(tmp_path, clock):
    engine = make_engine(f"sqlite:///{tmp_path / 'csvc.sqlite'}")
    upgrade(engine)
    yield SynchronousStore(engine, clock)
    engine.dispose()


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def request(key=None, subject=()):
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(list(subject))).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM)


INSTANCE = {"uuid": "0b6f6c1e-4a7e-4c69-9d0e-3b1c3f0f9a11", "name": "nova-1a2b"}


# -- the authority ---------------------------------------------------------


def test_a_request_is_signed_with_csvcs_own_subject_and_validity(authority, clock, tls_dir):
    key, csr = request()
    cert = x509.load_pem_x509_certificate(authority.sign(csr, INSTANCE))
    assert cert.subject == agenttls.instance_subject(INSTANCE["uuid"])
    assert cert.subject.rfc4514_string() == f"CN={INSTANCE['uuid']},OU=csvc instances"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    now = datetime.datetime.fromtimestamp(clock.seconds(), datetime.timezone.utc)
    valid = cert.not_valid_after_utc - now
    assert abs(valid - datetime.timedelta(days=agenttls.AGENT_CERT_DAYS)) < datetime.timedelta(seconds=1)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ca = load_cert(os.path.join(tls_dir, "ca.pem"))
    cert.verify_directly_issued_by(ca)
    assert authority.identify(cert) == INSTANCE["uuid"]


def test_what_a_request_asks_beyond_its_key_is_not_taken(authority):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INSTANCE["name"])]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("control-plane.example")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert = x509.load_pem_x509_certificate(authority.sign(csr, INSTANCE))
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.subject == agenttls.instance_subject(INSTANCE["uuid"])


@pytest.mark.parametrize("subject", [
    [x509.NameAttribute(NameOID.COMMON_NAME, "nova-other")],
    [x509.NameAttribute(NameOID.COMMON_NAME, "5f0c7a59-0d7e-4b39-8f0e-2c7d1b6e4e22")],
    [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "csvc instances"),
     x509.NameAttribute(NameOID.COMMON_NAME, "5f0c7a59-0d7e-4b39-8f0e-2c7d1b6e4e22")],
    [x509.NameAttribute(NameOID.COMMON_NAME, INSTANCE["name"]),
     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "admins")],
])
def test_a_request_naming_another_subject_is_refused(authority, subject):
    _, csr = request(subject=subject)
    with pytest.raises(agenttls.EnrollmentRefused, match="not instance nova-1a2b"):
        authority.sign(csr, INSTANCE)


def test_requests_that_are_not_requests_or_of_weak_keys_are_refused(authority):
    with pytest.raises(agenttls.EnrollmentRefused, match="not a PEM certificate signing request"):
        authority.sign(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", INSTANCE)
    with pytest.raises(agenttls.EnrollmentRefused, match="larger than 8192 bytes"):
        authority.sign(b"x" * (agenttls.CSR_MAX + 1), INSTANCE)
    _, weak = request(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(agenttls.EnrollmentRefused, match="1024 bits"):
        authority.sign(weak, INSTANCE)
    _, odd = request(ec.generate_private_key(ec.SECP521R1()))
    with pytest.raises(agenttls.EnrollmentRefused, match="curve secp521r1"):
        authority.sign(odd, INSTANCE)


def test_a_request_not_signed_by_its_own_key_is_refused(authority):
    # The request's key replaced by another's: its signature no longer holds.
    key, _ = request()
    other = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    mine = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = other.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    at = bytes(der).index(mine)
    der[at:at + len(mine)] = theirs
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(agenttls.EnrollmentRefused, match="not signed by its own key"):
        authority.sign(forged, INSTANCE)


def test_an_expired_or_not_yet_valid_certificate_is_refused(authority, clock):
    _, csr = request()
    cert = x509.load_pem_x509_certificate(authority.sign(csr, INSTANCE))
    clock.advance(agenttls.AGENT_CERT_DAYS * DAY - 60)
    assert authority.identify(cert) == INSTANCE["uuid"]
    clock.advance(120)
    with pytest.raises(agenttls.EnrollmentRefused, match="expired at"):
        authority.identify(cert)
    early = agenttls.AgentAuthority(authority._ca_cert, authority._ca_key, Clock())
    with pytest.raises(agenttls.EnrollmentRefused, match="not valid before"):
        early.identify(cert)


def test_certificates_of_another_ca_and_operators_certificates(authority, tmp_path, clock, tls_dir):
    other_dir = str(tmp_path / "other")
    agenttls.init(other_dir)
    other = agenttls.AgentAuthority.from_directory(other_dir, clock)
    _, csr = request()
    foreign = x509.load_pem_x509_certificate(other.sign(csr, INSTANCE))
    with pytest.raises(agenttls.EnrollmentRefused, match="not signed by this control plane's CA"):
        authority.identify(foreign)
    # An operator's certificate (csvc-manage tls agent) names no instance.
    agenttls.issue_agent(tls_dir, "host-1")
    operator = load_cert(os.path.join(tls_dir, "agent-host-1.crt"))
    assert authority.identify(operator) is None


def test_without_ca_key_the_control_plane_is_no_authority(tls_dir, clock):
    os.remove(os.path.join(tls_dir, "ca.key"))
    assert agenttls.AgentAuthority.from_directory(tls_dir, clock) is None
    assert agenttls.server_options(tls_dir).requireCertificate is True


def test_with_ca_key_agents_without_certificate_may_connect_to_enroll(tls_dir):
    options = agenttls.server_options(tls_dir)
    assert options.requireCertificate is False
    assert options.verify is True


# -- the hub: enrollment and registration ----------------------------------


class Link:
    """
    An agent's link as the hub sees it: its peer, the certificate it
    presented over TLS (or none).
    """

    instance_uuid = None
    certificate_sha256 = None

    def __init__(self, cert=None):
        self.cert = cert
        self.transport = StringTransport()

    def peer(self):
        return "IPv4Address(TCP, '198.51.100.7', 40000)"

    def peer_certificate(self):
        return self.cert


@pytest.fixture
def hub(store, authority, clock):
    hub = AgentHub(store, journal=None, clock=clock)
    hub.authority = authority
    return hub


def registration(hub, link, token=""):
    return hub.register(link, token, "docker", 5, "host", [], {})


def failure_of(d):
    results = []
    d.addBoth(results.append)
    return results[0]


def messages(logs):
    return [formatEvent(event) for event in logs]


def enroll(hub, token, csr=None):
    key, csr = (None, csr) if csr is not None else request()
    answer = result_of(hub.enroll(Link(), token, csr))
    return key, x509.load_pem_x509_certificate(answer["certificate"]), answer


def test_a_token_is_traded_once_for_a_certificate_the_agent_registers_by(hub, store):
    row, token = result_of(store.create_instance("nova-1", "nova", 5))
    _, cert, answer = enroll(hub, token)
    assert answer["instance_uuid"] == row["uuid"] == hub.authority.identify(cert)
    stored = result_of(store.get_instance(row["uuid"]))
    assert stored["enrolled_at"] is not None
    assert stored["agent_cert_sha256"] == agenttls.fingerprint(cert)
    # The second use of the token is refused, and logged.
    with capturedLogs() as logs:
        again = failure_of(hub.enroll(Link(), token, request()[1]))
    assert again.check(commands.NotEnrolled)
    assert "was used already" in str(again.value)
    assert any("the enrollment token of instance nova-1 was used already" in m for m in messages(logs))
    # Registering with the token (no certificate) is refused too.
    refused = failure_of(registration(hub, Link(), token))
    assert refused.check(commands.NotEnrolled)
    # The certificate alone registers it.
    link = Link(cert)
    answer = result_of(registration(hub, link))
    assert answer["instance_uuid"] == row["uuid"]
    assert link.certificate_sha256 == agenttls.fingerprint(cert)
    assert result_of(store.get_instance(row["uuid"]))["status"] == "active"


def test_a_certificate_is_refused_once_replaced_revoked_or_expired(hub, store, clock):
    row, token = result_of(store.create_instance("nova-1", "nova", 5))
    key, cert, _ = enroll(hub, token)
    link = Link(cert)
    result_of(registration(hub, link))
    # Renewed: the new certificate replaces the old one.
    renewed = x509.load_pem_x509_certificate(result_of(hub.renew(link, request(key)[1]))["certificate"])
    assert renewed.serial_number != cert.serial_number
    with capturedLogs() as logs:
        stale = failure_of(registration(hub, Link(cert)))
    assert stale.check(commands.NotEnrolled)
    assert any("is not the one instance nova-1 was last issued" in m for m in messages(logs))
    assert result_of(registration(hub, Link(renewed)))["instance_uuid"] == row["uuid"]
    # Expired.
    clock.advance(agenttls.AGENT_CERT_DAYS * DAY + 600)
    expired = failure_of(registration(hub, Link(renewed)))
    assert expired.check(commands.NotEnrolled) and "expired at" in str(expired.value)
    # Revoked.
    clock.advance(-(agenttls.AGENT_CERT_DAYS * DAY + 600))
    store.run_sync(instances.thd_revoke, row["uuid"])
    revoked = failure_of(registration(hub, Link(renewed)))
    assert revoked.check(commands.NotEnrolled)


def test_a_certificate_of_one_instance_does_not_register_another(hub, store):
    first, first_token = result_of(store.create_instance("nova-1", "nova", 5))
    second, second_token = result_of(store.create_instance("nova-2", "nova", 5))
    _, cert, _ = enroll(hub, first_token)
    # Its token in hand, with the first's certificate: registers as the first.
    answer = result_of(registration(hub, Link(cert), second_token))
    assert answer["instance_uuid"] == first["uuid"]
    assert result_of(store.get_instance(second["uuid"]))["enrolled_at"] is None


def test_only_an_agent_registered_by_certificate_renews(hub, store, tls_dir):
    row, token = result_of(store.create_instance("static-1", "static", 5))
    agenttls.issue_agent(tls_dir, "static-1")
    operator = load_cert(os.path.join(tls_dir, "agent-static-1.crt"))
    link = Link(operator)
    result_of(registration(hub, link, token))
    refused = failure_of(hub.renew(link, request()[1]))
    assert refused.check(commands.CertificateRefused)


def test_an_operators_certificate_is_bound_at_the_tokens_first_use(hub, store, tls_dir):
    row, token = result_of(store.create_instance("static-1", "static", 5))
    for name in ("static-1", "thief"):
        agenttls.issue_agent(tls_dir, name)
    own, thief = (
        load_cert(os.path.join(tls_dir, f"agent-{name}.crt"))
        for name in ("static-1", "thief")
    )
    assert result_of(registration(hub, Link(own), token))["instance_uuid"] == row["uuid"]
    assert result_of(store.get_instance(row["uuid"]))["agent_cert_sha256"] == agenttls.fingerprint(own)
    # Again with the same certificate: the same agent reconnecting.
    assert result_of(registration(hub, Link(own), token))["instance_uuid"] == row["uuid"]
    # The token with another certificate: refused, logged.
    with capturedLogs() as logs:
        refused = failure_of(registration(hub, Link(thief), token))
    assert refused.check(commands.NotEnrolled)
    assert any("was used already" in m for m in messages(logs))
    # Without a certificate: the agent is told to enroll.
    bare = failure_of(registration(hub, Link(), token))
    assert bare.check(commands.NotEnrolled) and "--ca-cert" in str(bare.value)


def test_a_fresh_token_makes_a_new_enrollment_possible(hub, store):
    row, token = result_of(store.create_instance("local-1", "local", 5))
    enroll(hub, token)
    assert failure_of(hub.enroll(Link(), token, request()[1])).check(commands.NotEnrolled)
    fresh = result_of(store.set_enroll_token(row["uuid"]))
    _, cert, _ = enroll(hub, fresh)
    assert result_of(registration(hub, Link(cert)))["instance_uuid"] == row["uuid"]


def test_a_bad_request_does_not_use_the_token(hub, store):
    row, token = result_of(store.create_instance("nova-1", "nova", 5))
    _, csr = request(subject=[x509.NameAttribute(NameOID.COMMON_NAME, "nova-2")])
    refused = failure_of(hub.enroll(Link(), token, csr))
    assert refused.check(commands.CertificateRefused)
    assert result_of(store.get_instance(row["uuid"]))["enrolled_at"] is None
    enroll(hub, token)


def test_without_authority_tokens_register_as_before(store, clock):
    hub = AgentHub(store, journal=None, clock=clock)
    row, token = result_of(store.create_instance("static-1", "static", 5))
    for _ in range(2):
        assert result_of(registration(hub, Link(), token))["instance_uuid"] == row["uuid"]
    assert result_of(store.get_instance(row["uuid"]))["enrolled_at"] is None
    refused = failure_of(hub.enroll(Link(), token, request()[1]))
    assert refused.check(commands.CertificateRefused) and "no ca.key" in str(refused.value)


def test_unknown_tokens_are_refused_at_enrollment(hub):
    refused = failure_of(hub.enroll(Link(), "no-such-token", request()[1]))
    assert refused.check(commands.NotEnrolled)


# -- the agent's side ------------------------------------------------------


def test_the_agent_keeps_its_key_private_and_takes_only_its_own_certificate(tmp_path, tls_dir, authority):
    state = str(tmp_path / "state")
    identity = AgentIdentity(state, os.path.join(tls_dir, "ca.pem"))
    assert identity.certificate() is None
    csr = identity.request()
    assert os.stat(os.path.join(state, "agent.key")).st_mode & 0o777 == 0o600
    assert os.stat(state).st_mode & 0o777 == 0o700
    # The same key for a second request (an enrollment tried again).
    assert x509.load_pem_x509_csr(identity.request()).public_key() == x509.load_pem_x509_csr(csr).public_key()
    # A certificate for another key, or of another CA, is not taken.
    with pytest.raises(IdentityError, match="another key"):
        identity.store(authority.sign(request()[1], INSTANCE))
    other_dir = str(tmp_path / "other")
    agenttls.init(other_dir)
    other = agenttls.AgentAuthority.from_directory(other_dir, authority._clock)
    with pytest.raises(IdentityError, match="unusable certificate"):
        identity.store(other.sign(csr, INSTANCE))
    assert identity.certificate() is None
    cert = identity.store(authority.sign(csr, INSTANCE))
    assert AgentIdentity(state, os.path.join(tls_dir, "ca.pem")).certificate() == cert
    now = datetime.datetime.now(datetime.timezone.utc)
    assert not identity.renewal_due(now)
    assert identity.renewal_due(now + datetime.timedelta(days=agenttls.AGENT_CERT_DAYS - 9))


def test_agent_options_read_the_token_from_a_file(tmp_path, tls_dir, authority, monkeypatch):
    monkeypatch.delenv("CSVC_ENROLL_TOKEN", raising=False)
    token_file = tmp_path / "enroll-token"
    token_file.write_text("s3cret-token\n")
    ca = os.path.join(tls_dir, "ca.pem")
    state = str(tmp_path / "state")
    options = Options()
    options["enroll-token"] = None
    options.parseOptions(["--enroll-token-file", str(token_file), "--ca-cert", ca, "--state-dir", state,
                          "--connect", "tls:cp.example:8781"])
    assert options["enroll-token"] == "s3cret-token"
    assert (options.host, options.port) == ("cp.example", 8781)
    # Nothing to enroll with: refused.
    empty = Options()
    empty["enroll-token"] = None
    with pytest.raises(usage.UsageError, match="--enroll-token-file"):
        empty.parseOptions(["--enroll-token-file", str(tmp_path / "gone"), "--ca-cert", ca, "--state-dir", state,
                            "--connect", "tls:cp.example:8781"])
    # Enrolled: the certificate is enough.
    options.identity.store(authority.sign(options.identity.request(), INSTANCE))
    enrolled = Options()
    enrolled["enroll-token"] = None
    enrolled.parseOptions(["--ca-cert", ca, "--state-dir", state, "--connect", "tls:cp.example:8781"])
    assert enrolled.identity.certificate() is not None
    with pytest.raises(usage.UsageError, match="tls:HOST:PORT and nothing else"):
        Options().parseOptions(["--ca-cert", ca, "--state-dir", state, "--connect", "tcp:cp.example:8781"])


def test_parse_connect():
    assert parse_connect("tls:10.0.0.1:8781") == ("10.0.0.1", 8781)
    for bad in ("tls:h:8781:trustRoots=/x", "tcp:h:1", "tls::1", "tls:h:p"):
        with pytest.raises(IdentityError):
            parse_connect(bad)


# -- Nova's user data --------------------------------------------------------


def test_nova_user_data_is_bounded_and_its_command_line_escaped_for_systemd():
    from csvc.providers.nova import NovaError, ServerTemplate

    template = ServerTemplate("2", "image", "net", None, "tls:cp.example:8781", agent_package="csvc==1.0 $HOME%h")
    user_data = template.user_data("nova-1", "T0k3n-s3cret", 5)
    (exec_start,) = [line for line in user_data.splitlines() if "ExecStart=" in line]
    assert "T0k3n-s3cret" not in exec_start and user_data.count("T0k3n-s3cret") == 1
    command = template.agent_command("nova-$x%i", 5)
    assert "'nova-$$x%%i'" in command and "--enroll-token-file /etc/csvc-agent/enroll-token" in command
    huge = ServerTemplate("2", "image", "net", None, "tls:cp.example:8781", ca_pem="A" * 50000)
    with pytest.raises(NovaError, match="Nova takes at most 65535"):
        huge.user_data("nova-1", "tok", 5)


def test_a_registered_link_does_not_register_again_as_another_instance(store, clock):
    # An agent holding a second instance's token (without a CA: tokens are
    # reusable) registers its link again as that instance: refused, and the
    # hub keeps one link per instance and one instance per link.
    hub = AgentHub(store, journal=None, clock=clock)
    first, first_token = result_of(store.create_instance("static-1", "static", 5))
    second, second_token = result_of(store.create_instance("static-2", "static", 5))
    link = Link()
    assert result_of(registration(hub, link, first_token))["instance_uuid"] == first["uuid"]
    with capturedLogs() as logs:
        refused = failure_of(registration(hub, link, second_token))
    assert refused.check(commands.NotEnrolled)
    assert any("registers again as instance static-2" in m for m in messages(logs))
    assert link.instance_uuid == first["uuid"]
    assert hub.connected_instances() == {first["uuid"]}
    assert result_of(store.get_instance(second["uuid"]))["status"] != "active"
    # Its own instance again is a plain re-registration.
    assert result_of(registration(hub, link, first_token))["instance_uuid"] == first["uuid"]
