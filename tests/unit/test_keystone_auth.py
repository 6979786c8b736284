"""
KeystoneAuth's rules and caches, driven by task.Clock with a fake validator;
the real Keystone is in tests/integration/test_keystone.py.
"""

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from csvc import config
from csvc.api.auth import AuthUnavailable, Unauthorized
from csvc.api.keystone import (
    AuthBusy,
    ExpiringLRU,
    InvalidToken,
    KeystoneAuth,
    TokenInfo,
    identity_url,
    token_info,
    token_key,
)


class FakeKeystone:
    """
    token -> TokenInfo; a token not there is invalid; ``down`` makes every
    validation fail as unreachable; ``hold`` keeps answers until released.
    """

    def __init__(self):
        self.tokens = {}
        self.calls = []
        self.down = False
        self.hold = False
        self.held = []

    def validate(self, token):
        self.calls.append(token)
        if self.hold:
            d = Deferred()
            self.held.append((d, token))
            return d
        return self._answer(token)

    def _answer(self, token):
        if self.down:
            return fail(AuthUnavailable("connection refused"))
        if token not in self.tokens:
            return fail(InvalidToken("the token is not valid"))
        return succeed(self.tokens[token])

    def release(self):
        held, self.held = self.held, []
        for d, token in held:
            self._answer(token).chainDeferred(d)


DEFAULT = ("default", "Default")


def make(**kwargs):
    clock = Clock()
    keystone = FakeKeystone()
    keystone.tokens["tok-alpha"] = TokenInfo("p-alpha", "u-alpha", ("member", "reader"))
    # The admin role, but in a tenant's project.
    keystone.tokens["tok-admin"] = TokenInfo("p-alpha", "u-admin", ("admin", "member", "reader"),
                                             project_name="alpha", project_domain=DEFAULT)
    keystone.tokens["tok-system"] = TokenInfo(None, "u-root", ("admin", "member", "reader"), system=True)
    keystone.tokens["tok-system-reader"] = TokenInfo(None, "u-auditor", ("reader",), system=True)
    keystone.tokens["tok-cloud-admin"] = TokenInfo("p-cloud", "u-ops", ("admin", "member", "reader"),
                                                   project_name="cloud", project_domain=DEFAULT)
    keystone.tokens["tok-cloud-elsewhere"] = TokenInfo("p-cloud-2", "u-ops", ("admin", "member", "reader"),
                                                       project_name="cloud", project_domain=("d-2", "Other"))
    keystone.tokens["tok-cloud-member"] = TokenInfo("p-cloud", "u-dev", ("member", "reader"),
                                                    project_name="cloud", project_domain=DEFAULT)
    auth = KeystoneAuth(keystone.validate, clock, **kwargs)
    return auth, keystone, clock


def result(d):
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def identity(auth, token, project):
    value = result(auth.authenticate(token, project))
    if not hasattr(value, "project_id"):
        value.raiseException()
    return value


def refused(auth, token, project, kind=Unauthorized):
    failure = result(auth.authenticate(token, project))
    assert hasattr(failure, "check") and failure.check(kind), failure
    return str(failure.value)


def test_valid_token_of_its_project():
    auth, _, _ = make()
    ident = identity(auth, "tok-alpha", "p-alpha")
    assert (ident.project_id, ident.user_id, ident.is_admin) == ("p-alpha", "u-alpha", False)
    assert ident.roles == ("member", "reader")


def test_admin_role_in_a_tenants_project_is_a_member():
    auth, _, _ = make()
    ident = identity(auth, "tok-admin", "p-alpha")
    assert not ident.is_admin
    assert "admin" in ident.roles
    # Even when that project is someone's admin project by id elsewhere:
    # only the configured one counts.
    auth, _, _ = make(admin_project="p-cloud")
    assert not identity(auth, "tok-admin", "p-alpha").is_admin


def test_system_scoped_admin_is_admin_in_the_project_it_names():
    auth, _, _ = make()
    ident = identity(auth, "tok-system", "p-beta")
    assert (ident.project_id, ident.user_id, ident.is_admin) == ("p-beta", "u-root", True)


def test_system_scope_without_the_admin_role_is_refused():
    auth, _, _ = make()
    assert "admin role only" in refused(auth, "tok-system-reader", "p-alpha")


@pytest.mark.parametrize("configured", ["p-cloud", "cloud"])
def test_admin_role_in_the_admin_project_by_id_or_name(configured):
    auth, _, _ = make(admin_project=configured)
    assert identity(auth, "tok-cloud-admin", "p-cloud").is_admin
    # Its members stay members.
    assert not identity(auth, "tok-cloud-member", "p-cloud").is_admin


def test_admin_project_name_is_of_its_domain_only():
    auth, _, _ = make(admin_project="cloud")
    assert not identity(auth, "tok-cloud-elsewhere", "p-cloud-2").is_admin
    auth, _, _ = make(admin_project="cloud", admin_project_domain="d-2")
    assert identity(auth, "tok-cloud-elsewhere", "p-cloud-2").is_admin
    assert not identity(auth, "tok-cloud-admin", "p-cloud").is_admin


def test_no_admin_project_by_default():
    auth, _, _ = make()
    assert not identity(auth, "tok-cloud-admin", "p-cloud").is_admin


def test_other_project_is_401_even_from_cache():
    auth, keystone, _ = make()
    assert "p-beta" in refused(auth, "tok-alpha", "p-beta")
    identity(auth, "tok-alpha", "p-alpha")
    assert "p-beta" in refused(auth, "tok-alpha", "p-beta")
    # One validation served all three: the project check is csvc's own.
    assert keystone.calls == ["tok-alpha"]


@pytest.mark.parametrize("token, project", [(None, "p-alpha"), ("", "p-alpha"), ("tok-alpha", None), ("tok-alpha", "")])
def test_missing_headers_are_401_without_asking_keystone(token, project):
    auth, keystone, _ = make()
    assert "missing" in refused(auth, token, project)
    assert keystone.calls == []


def test_valid_token_cached_for_ttl_then_revalidated():
    auth, keystone, clock = make(cache_ttl=60)
    identity(auth, "tok-alpha", "p-alpha")
    clock.advance(59)
    identity(auth, "tok-alpha", "p-alpha")
    assert len(keystone.calls) == 1
    clock.advance(1)
    identity(auth, "tok-alpha", "p-alpha")
    assert len(keystone.calls) == 2


def test_revoked_token_stops_working_within_ttl():
    auth, keystone, clock = make(cache_ttl=10)
    identity(auth, "tok-alpha", "p-alpha")
    del keystone.tokens["tok-alpha"]  # revoked in Keystone
    clock.advance(5)
    identity(auth, "tok-alpha", "p-alpha")  # still cached
    clock.advance(5)
    refused(auth, "tok-alpha", "p-alpha")


def test_cache_never_outlives_the_token():
    auth, keystone, clock = make(cache_ttl=60)
    keystone.tokens["tok-short"] = TokenInfo("p-alpha", "u", (), expires_at=clock.seconds() + 3)
    identity(auth, "tok-short", "p-alpha")
    del keystone.tokens["tok-short"]
    clock.advance(3)
    refused(auth, "tok-short", "p-alpha")
    assert len(keystone.calls) == 2


def test_zero_ttl_validates_every_time():
    auth, keystone, _ = make(cache_ttl=0)
    identity(auth, "tok-alpha", "p-alpha")
    identity(auth, "tok-alpha", "p-alpha")
    assert len(keystone.calls) == 2


def test_invalid_token_cached_briefly():
    auth, keystone, clock = make(negative_ttl=5)
    refused(auth, "garbage", "p-alpha")
    refused(auth, "garbage", "p-alpha")
    assert keystone.calls == ["garbage"]
    clock.advance(5)
    keystone.tokens["garbage"] = TokenInfo("p-alpha", "u", ())
    identity(auth, "garbage", "p-alpha")


def test_unavailable_is_503_and_not_cached():
    auth, keystone, _ = make()
    keystone.down = True
    refused(auth, "tok-alpha", "p-alpha", kind=AuthUnavailable)
    keystone.down = False
    identity(auth, "tok-alpha", "p-alpha")
    assert len(keystone.calls) == 2


def test_unexpected_validator_error_is_unavailable():
    clock = Clock()
    auth = KeystoneAuth(lambda token: fail(RuntimeError("bug")), clock)
    refused(auth, "tok", "p", kind=AuthUnavailable)


def test_concurrent_requests_share_one_validation():
    auth, keystone, _ = make()
    keystone.hold = True
    first = auth.authenticate("tok-alpha", "p-alpha")
    second = auth.authenticate("tok-alpha", "p-beta")
    assert keystone.calls == ["tok-alpha"]
    keystone.release()
    assert result(first).user_id == "u-alpha"
    assert result(second).check(Unauthorized)


def test_validations_at_once_are_bounded_and_the_rest_wait():
    auth, keystone, _ = make(max_concurrent=2, max_waiting=3)
    keystone.hold = True
    waiting = [auth.authenticate(f"bogus-{i}", "p-alpha") for i in range(5)]
    # Two asked now, three in line.
    assert keystone.calls == ["bogus-0", "bogus-1"]
    keystone.release()
    assert keystone.calls == ["bogus-0", "bogus-1", "bogus-2", "bogus-3"]
    keystone.release()
    keystone.release()
    assert len(keystone.calls) == 5
    assert all(result(d).check(Unauthorized) for d in waiting)


def test_past_the_queue_is_busy_503_without_asking_keystone():
    auth, keystone, _ = make(max_concurrent=1, max_waiting=2)
    keystone.hold = True
    held = [auth.authenticate(f"bogus-{i}", "p-alpha") for i in range(3)]
    failure = result(auth.authenticate("bogus-3", "p-alpha"))
    assert failure.check(AuthBusy) and failure.check(AuthUnavailable)
    assert "busy" in str(failure.value) and failure.value.retry_after >= 1
    assert keystone.calls == ["bogus-0"]
    # The same token as one in line joins it instead of being refused;
    # cached tokens need no validation at all.
    joined = auth.authenticate("bogus-2", "p-alpha")
    while keystone.held:
        keystone.release()
    assert result(joined).check(Unauthorized)
    assert all(result(d).check(Unauthorized) for d in held)
    assert keystone.calls == ["bogus-0", "bogus-1", "bogus-2"]
    # Room again.
    keystone.hold = False
    identity(auth, "tok-alpha", "p-alpha")


def test_a_validator_that_raises_frees_its_place():
    def broken(token):
        raise RuntimeError("bug")

    auth = KeystoneAuth(broken, Clock(), max_concurrent=1, max_waiting=0)
    for _ in range(3):
        refused(auth, "tok", "p", kind=AuthUnavailable)


def test_cache_is_bounded_and_keyed_by_digest():
    auth, keystone, _ = make(max_entries=3)
    for i in range(5):
        keystone.tokens[f"t{i}"] = TokenInfo("p", f"u{i}", ())
        identity(auth, f"t{i}", "p")
    assert len(auth._valid) == 3
    assert token_key("t4") in auth._valid and "t4" not in auth._valid
    assert token_key("t0") not in auth._valid
    identity(auth, "t0", "p")  # evicted: asks again
    assert keystone.calls.count("t0") == 2


def test_lru_keeps_recently_used():
    lru = ExpiringLRU(2)
    lru.put("a", 1, 100)
    lru.put("b", 2, 100)
    assert lru.get("a", 0) == 1
    lru.put("c", 3, 100)
    assert lru.get("b", 0) is None and lru.get("a", 0) == 1 and lru.get("c", 0) == 3
    assert lru.get("a", 100) is None and "a" not in lru


def test_token_info_from_keystone_body():
    body = {
        "token": {
            "user": {"id": "u1", "name": "alpha-member"},
            "project": {"id": "p1", "name": "alpha"},
            "roles": [{"id": "r1", "name": "reader"}, {"id": "r2", "name": "member"}],
            "expires_at": "1970-01-01T00:01:40.000000Z",
        }
    }
    assert token_info(body) == TokenInfo("p1", "u1", ("member", "reader"), 100.0, project_name="alpha")
    body["token"]["project"]["domain"] = {"id": "default", "name": "Default"}
    assert token_info(body).project_domain == ("default", "Default")


def test_system_scoped_token_info():
    body = {"token": {"user": {"id": "u1"}, "system": {"all": True}, "roles": [{"name": "admin"}]}}
    info = token_info(body)
    assert (info.system, info.project_id, info.roles) == (True, None, ("admin",))


@pytest.mark.parametrize("scope", [{"system": {}}, {"system": {"all": False}}, {"system": True},
                                   {"domain": {"id": "default"}}, {"project": {"name": "no-id"}}])
def test_other_scopes_are_invalid(scope):
    with pytest.raises(InvalidToken):
        token_info({"token": {"user": {"id": "u1"}, "roles": [{"name": "admin"}], **scope}})


def test_unscoped_token_is_invalid():
    with pytest.raises(InvalidToken):
        token_info({"token": {"user": {"id": "u1"}, "roles": []}})


def test_identity_url():
    assert identity_url("http://127.0.0.1:5000/v3/") == "http://127.0.0.1:5000/v3"
    assert identity_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/v3"


def test_config_auth_modes():
    assert config.resolve({})["auth"] == "token"
    with pytest.raises(config.ConfigError, match="'ldap'"):
        config.resolve({"auth": "ldap"})
    needs = "keystone-url, keystone-username, keystone-password, keystone-project"
    with pytest.raises(config.ConfigError, match=needs):
        config.resolve({"auth": "keystone"})
    settings = config.resolve(
        {
            "auth": "keystone",
            "keystone-url": "http://127.0.0.1:5000/v3/",
            "keystone-username": "csvc",
            "keystone-password": "secret",
            "keystone-project": "admin",
            "auth-cache-ttl": "1",
        }
    )
    assert settings["auth-cache-ttl"] == 1.0
    assert settings["keystone-user-domain"] == "Default"


def test_config_of_the_admin_project_and_the_bound():
    settings = config.resolve({})
    assert settings["keystone-admin-project"] is None
    assert (settings["keystone-validations"], settings["keystone-validation-queue"]) == (4, 64)
    settings = config.resolve({"keystone-admin-project": "cloud", "keystone-validation-queue": "0"})
    assert (settings["keystone-admin-project"], settings["keystone-validation-queue"]) == ("cloud", 0)
    with pytest.raises(config.ConfigError, match="keystone-validations must be at least 1"):
        config.resolve({"keystone-validations": "0"})
    with pytest.raises(config.ConfigError, match="keystone-validation-queue must be an integer"):
        config.resolve({"keystone-validation-queue": "lots"})
