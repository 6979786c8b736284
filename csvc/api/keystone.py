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
  digests of the tokens, never the tokens.  At most ``max_concurrent``
  validations run at once and ``max_waiting`` wait for their turn; past
  that, ``AuthBusy`` (a 503 with Retry-After), so that a flood of distinct
  tokens queues nothing without bound.

Admin means admin, as the cloud says (oslo.policy's ``role:admin and
system_scope:all``): a token is an admin's when it is system-scoped
(``system: {all: true}``) with the ``admin`` role, or project-scoped with the
``admin`` role in the configured admin project (``keystone-admin-project``).
The ``admin`` role in any other project is a member's.  A system-scoped admin
acts in the project its ``X-Auth-Project-Id`` names.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.application.service import MultiService, Service
from collections import deque

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from csvc.api.auth import AuthUnavailable, Identity, Unauthorized

ADMIN_ROLE = "admin"
#: Seconds a client told the identity service is busy should wait.
BUSY_RETRY_AFTER = 1


class AuthBusy(AuthUnavailable):
    """
    Too many token validations are running and waiting: a 503 whose
    ``retry_after`` (seconds) goes out as Retry-After.
    """

    retry_after = BUSY_RETRY_AFTER


class InvalidToken(Exception):
    """
    Keystone says the token is not valid (404 or 401 for the subject token).
    """


@dataclass(frozen=True)
class TokenInfo:
    """
    What csvc keeps of a validated token.
    """

    project_id: str | None  # None for a system-scoped token
    user_id: str
    roles: tuple = ()
    expires_at: float | None = None  # seconds since the epoch
    #: scoped to the whole system (``system: {all: true}``), not a project
    system: bool = False
    project_name: str | None = None
    #: the project's domain: (id, name)
    project_domain: tuple = (None, None)


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
    for a token scoped neither to a project nor to the whole system.
    """
    try:
        token = body["token"]
        user_id = token["user"]["id"]
        roles = tuple(sorted({r["name"] for r in token.get("roles") or () if r.get("name")}))
    except (KeyError, TypeError, AttributeError):
        raise AuthUnavailable("Keystone answered a token validation without a token") from None
    expires_at = _epoch(token.get("expires_at"))
    system = token.get("system")
    if isinstance(system, dict) and system.get("all") is True:
        return TokenInfo(None, user_id, roles, expires_at, system=True)
    project = token.get("project")
    if not isinstance(project, dict) or not project.get("id"):
        raise InvalidToken("the token is not scoped to a project")
    domain = project.get("domain") if isinstance(project.get("domain"), dict) else {}
    return TokenInfo(
        project["id"], user_id, roles, expires_at,
        project_name=project.get("name"), project_domain=(domain.get("id"), domain.get("name")),
    )


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
    or ``AuthUnavailable``), with the caches and the bound described in the
    module's docstring.  Concurrent requests with the same uncached token
    share one validation.  ``admin_project``: the project (id, or name in
    the domain ``admin_project_domain``, by name or id) whose ``admin`` role
    makes an admin; None for system-scoped admins only.  A MultiService so
    that the validator's thread pool (when given as ``validator_service``)
    starts and stops with it.
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
        admin_project=None,
        admin_project_domain="Default",
        max_concurrent=4,
        max_waiting=64,
    ):
        MultiService.__init__(self)
        self._validate = validate
        self._clock = clock
        self._ttl = float(cache_ttl)
        self._negative_ttl = float(negative_ttl)
        self._valid = ExpiringLRU(max_entries)
        self._invalid = ExpiringLRU(max_negative_entries)
        self._pending = {}
        self._admin_project = admin_project or None
        self._admin_project_domain = admin_project_domain
        self._max_concurrent = max_concurrent
        self._max_waiting = max_waiting
        #: validations running now
        self._running = 0
        #: (key, token) waiting for one of them to finish
        self._queue = deque()
        if validator_service is not None:
            validator_service.setServiceParent(self)

    @inlineCallbacks
    def authenticate(self, token, project_id):
        if not token:
            raise Unauthorized("the X-Auth-Token header is missing")
        if not project_id:
            raise Unauthorized("the X-Auth-Project-Id header is missing")
        info = yield self._token_info(token_key(token), token)
        if info.system:
            if ADMIN_ROLE not in info.roles:
                raise Unauthorized("a system-scoped token is accepted with the admin role only: "
                                   "use a token scoped to project " + project_id)
            return Identity(project_id=project_id, user_id=info.user_id, is_admin=True, roles=info.roles)
        if info.project_id != project_id:
            raise Unauthorized("the token does not belong to project " + project_id)
        return Identity(
            project_id=info.project_id,
            user_id=info.user_id,
            is_admin=ADMIN_ROLE in info.roles and self._in_admin_project(info),
            roles=info.roles,
        )

    def _in_admin_project(self, info):
        wanted = self._admin_project
        if wanted is None:
            return False
        if info.project_id == wanted:
            return True
        return info.project_name == wanted and self._admin_project_domain in info.project_domain

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
        if self._running < self._max_concurrent:
            self._pending[key] = [waiting]
            self._start(key, token)
        elif len(self._queue) < self._max_waiting:
            self._pending[key] = [waiting]
            self._queue.append((key, token))
        else:
            self.log.warn("token validation refused: {running} running and {waiting} waiting already",
                          running=self._running, waiting=len(self._queue))
            return fail(AuthBusy("the identity service is busy with other token validations: retry shortly"))
        return waiting

    def _start(self, key, token):
        self._running += 1
        try:
            d = self._validate(token)
        except Exception:
            d = fail()
        d.addBoth(self._validated, key)

    def _validated(self, result, key):
        self._running -= 1
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
        if self._queue and self._running < self._max_concurrent:
            self._start(*self._queue.popleft())
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
    concurrent = settings.get("keystone-validations", 4)
    validator = KeystoneValidator(client, reactor, threads=concurrent)
    return KeystoneAuth(
        validator.validate,
        reactor,
        cache_ttl=settings["auth-cache-ttl"],
        validator_service=validator,
        admin_project=settings.get("keystone-admin-project"),
        admin_project_domain=settings.get("keystone-admin-project-domain") or "Default",
        max_concurrent=concurrent,
        max_waiting=settings.get("keystone-validation-queue", 64),
    )
