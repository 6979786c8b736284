"""
Who is asking: one interface (``authenticate``) with, for now, one
implementation, csvc's own tokens (``csvc-manage token create``).  Keystone
comes behind the same interface.
"""

from dataclasses import dataclass

from twisted.internet.defer import inlineCallbacks


class Unauthorized(Exception):
    pass


class AuthUnavailable(Exception):
    """
    The identity service cannot say whether the token is valid (unreachable,
    failing, or refusing csvc's own credentials): a 503, never a 401.
    """


@dataclass(frozen=True)
class Identity:
    project_id: str
    user_id: str
    is_admin: bool = False
    roles: tuple = ()


class TokenAuth:
    """
    Standalone authentication: tokens stored hashed in the store, each bound
    to one project.
    """

    def __init__(self, store):
        self._store = store

    @inlineCallbacks
    def authenticate(self, token, project_id):
        if not token:
            raise Unauthorized("the X-Auth-Token header is missing")
        if not project_id:
            raise Unauthorized("the X-Auth-Project-Id header is missing")
        row = yield self._store.lookup_token(token)
        if row is None:
            raise Unauthorized("the token is not valid")
        if row["project_id"] != project_id:
            raise Unauthorized("the token does not belong to project " + project_id)
        return Identity(project_id=row["project_id"], user_id=row["user_id"], is_admin=row["is_admin"])
