"""
Keystone authentication (``--auth keystone``): the tenant's ``X-Auth-Token``
is validated against Keystone's identity API v3 (``GET /v3/auth/tokens`` with
``X-Subject-Token``), the service authenticating itself with its own
credentials through ``keystoneauth1``.

Three parts, each with one job:

- ``KeystoneClient``: blocking, no Twisted; one validation per call.
- ``KeystoneValidator``: a service owning a small thread pool on which the
  client runs (keystoneauth1 blocks; the reactor thread never does).
- ``KeystoneAuth``: the ``authenticate(token, project_id)`` of csvc/api/auth.py
  over any ``validate(token) -> Deferred[TokenInfo]``, with a bounded cache of
  validations.  Valid tokens are cached for ``cache_ttl`` seconds (never past
  the token's own expiry), so a revoked token stops working within that
  time; tokens Keystone refuses are cached for ``negative_ttl`` seconds (5 by
  default) in a separate, smaller cache, so a flood of bad tokens neither
  reaches Keystone at full rate nor evicts the good ones.  Keystone being
  unreachable (``AuthUnavailable``) is never cached.  Cache keys are SHA-256
  digests of the tokens, never the tokens.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from csvc.api.auth import AuthUnavailable, Identity, Unauthorized

ADMIN_ROLE = "admin"


class InvalidToken(Exception):
    """
    Keystone says the token is not valid (404 or 401 for the subject token).
    """


@dataclass(frozen=True)
class TokenInfo:
    """
    What csvc keeps of a validated token.
    """

    project_id: str
    user_id: str
    roles: tuple = ()
    expires_at: float | None = None  # seconds since the epoch


def _epoch(iso):
    if not iso:
        return None
    text = iso.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def token_info(body):
    """
    ``TokenInfo`` from the body of ``GET /v3/auth/tokens``; ``InvalidToken``
    for a token that is not scoped to a project.
    """
    try:
        token = body["token"]
        user_id = token["user"]["id"]
    except (KeyError, TypeError):
        raise AuthUnavailable("Keystone answered a token validation without a token") from None
    project = token.get("project")
    if not project or not project.get("id"):
        raise InvalidToken("the token is not scoped to a project")
    roles = tuple(sorted({r["name"] for r in token.get("roles") or () if r.get("name")}))
    return TokenInfo(project["id"], user_id, roles, _epoch(token.get("expires_at")))


def identity_url(url):
    """
    The identity API v3 root for a Keystone URL given with or without ``/v3``.
    """
    base = url.rstrip("/")
    if not base.endswith("/v3"):
        base += "/v3"
    return base


class KeystoneClient:
    """
    Blocking token validation through keystoneauth1; call ``validate`` on a
    worker thread only.
    """

    def __init__(
        self,
        auth_url,
        username,
        password,
        project_name,
        user_domain="Default",
        project_domain="Default",
        timeout=10.0,
    ):
        from keystoneauth1 import session
        from keystoneauth1.identity import v3

        self._url = identity_url(auth_url)
        plugin = v3.Password(
            auth_url=self._url,
            username=username,
            password=password,
            project_name=project_name,
            user_domain_name=user_domain,
            project_domain_name=project_domain,
        )
        self._session = session.Session(auth=plugin, timeout=timeout)

    def validate(self, token):
        from keystoneauth1 import exceptions

        try:
            # The session adds the service's own X-Auth-Token (and fetches a
            # new one once on a 401 for it).
            response = self._session.get(
                self._url + "/auth/tokens",
                headers={"X-Subject-Token": token},
                raise_exc=False,
                connect_retries=0,
                log=False,
            )
        except exceptions.ClientException as exc:
            # Unreachable, timed out, or the service's own credentials refused.
            raise AuthUnavailable(f"Keystone is not available: {type(exc).__name__}") from None
        if response.status_code in (401, 404):
            raise InvalidToken("the token is not valid")
        if response.status_code != 200:
            raise AuthUnavailable(f"Keystone answered {response.status_code} to a token validation")
        try:
            body = response.json()
        except ValueError:
            raise AuthUnavailable("Keystone answered a token validation with no JSON") from None
        return token_info(body)


class KeystoneValidator(Service):
    """
    Runs a ``KeystoneClient``'s validations on a thread pool of its own.
    """

    def __init__(self, client, reactor, threads=4):
        self._client = client
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="csvc-keystone")

    def startService(self):
        Service.startService(self)
        self._pool.start()

    def stopService(self):
        Service.stopService(self)
        self._pool.stop()

    def validate(self, token):
        return deferToThreadPool(self._reactor, self._pool, self._client.validate, token)


class ExpiringLRU:
    """
    At most ``size`` entries, each until its own expiry time; the least
    recently used entry goes first when full.
    """

    def __init__(self, size):
        self._size = size
        self._entries = OrderedDict()

    def get(self, key, now):
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if now >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key, value, expires):
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self):
        return len(self._entries)

    def __contains__(self, key):
        return key in self._entries


def token_key(token):
    return hashlib.sha256(token.encode("utf-8")).digest()


class KeystoneAuth(MultiService):
    """
    ``authenticate(token, project_id)`` against Keystone through
    ``validate(token) -> Deferred[TokenInfo]`` (failing with ``InvalidToken``
    or ``AuthUnavailable``), with the caches described in the module's
    docstring.  Concurrent requests with the same uncached token share one
    validation.  A MultiService so that the validator's thread pool (when
    given as ``validator_service``) starts and stops with it.
    """

    log = Logger()

    def __init__(
        self,
        validate,
        clock,
        cache_ttl=60.0,
        negative_ttl=5.0,
        max_entries=10_000,
        max_negative_entries=1_000,
        validator_service=None,
    ):
        MultiService.__init__(self)
        self._validate = validate
        self._clock = clock
        self._ttl = float(cache_ttl)
        self._negative_ttl = float(negative_ttl)
        self._valid = ExpiringLRU(max_entries)
        self._invalid = ExpiringLRU(max_negative_entries)
        self._pending = {}
        if validator_service is not None:
            validator_service.setServiceParent(self)

    @inlineCallbacks
    def authenticate(self, token, project_id):
        if not token:
            raise Unauthorized("the X-Auth-Token header is missing")
        if not project_id:
            raise Unauthorized("the X-Auth-Project-Id header is missing")
        info = yield self._token_info(token_key(token), token)
        if info.project_id != project_id:
            raise Unauthorized("the token does not belong to project " + project_id)
        return Identity(
            project_id=info.project_id,
            user_id=info.user_id,
            is_admin=ADMIN_ROLE in info.roles,
            roles=info.roles,
        )

    def _token_info(self, key, token):
        now = self._clock.seconds()
        info = self._valid.get(key, now)
        if info is not None:
            return succeed(info)
        reason = self._invalid.get(key, now)
        if reason is not None:
            return fail(Unauthorized(reason))
        waiting = Deferred()
        if key in self._pending:
            self._pending[key].append(waiting)
            return waiting
        self._pending[key] = [waiting]
        self._validate(token).addBoth(self._validated, key)
        return waiting

    def _validated(self, result, key):
        now = self._clock.seconds()
        waiters = self._pending.pop(key, [])
        if isinstance(result, TokenInfo):
            expires = now + self._ttl
            if result.expires_at is not None:
                expires = min(expires, result.expires_at)
            if self._ttl > 0:
                self._valid.put(key, result, expires)
            outcome = result
        elif result.check(InvalidToken):
            message = str(result.value) or "the token is not valid"
            if self._negative_ttl > 0:
                self._invalid.put(key, message, now + self._negative_ttl)
            outcome = Unauthorized(message)
        elif result.check(AuthUnavailable):
            self.log.error("token validation failed: {reason}", reason=str(result.value))
            outcome = AuthUnavailable("the identity service is not available")
        else:
            self.log.failure("token validation failed", result)
            outcome = AuthUnavailable("the identity service is not available")
        for waiting in waiters:
            if isinstance(outcome, Exception):
                waiting.errback(outcome)
            else:
                waiting.callback(outcome)
        return None


def keystone_auth(settings, reactor):
    """
    The ``KeystoneAuth`` the settings describe (``keystone-*``,
    ``auth-cache-ttl``), with its validator's thread pool as a child service.
    """
    client = KeystoneClient(
        settings["keystone-url"],
        settings["keystone-username"],
        settings["keystone-password"],
        settings["keystone-project"],
        user_domain=settings["keystone-user-domain"],
        project_domain=settings["keystone-project-domain"],
    )
    validator = KeystoneValidator(client, reactor)
    return KeystoneAuth(
        validator.validate,
        reactor,
        cache_ttl=settings["auth-cache-ttl"],
        validator_service=validator,
    )
