"""
Tokens, as units of work for ``Store`` (``thd_*(conn, ...)``, plain data in
and out): the API tokens ``csvc-manage`` issues and the one-time tokens an
attach is made with.  Only a secret's hash is stored; ``now`` is a naive UTC
datetime (``Store.now``).
"""

import hashlib
import secrets

from sqlalchemy import select

from csvc.store.models import attach_tokens, tokens


def hash_secret(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret():
    return secrets.token_urlsafe(32)


def row_of(row):
    """
    A row as a plain dict (None stays None).
    """
    return dict(row._mapping) if row is not None else None


# -- API tokens ----------------------------------------------------------------


def thd_create(conn, project_id, user_id, is_admin, now):
    """
    A new API token of ``user_id`` in ``project_id``; returns the token.
    """
    token = new_secret()
    conn.execute(
        tokens.insert().values(
            token_hash=hash_secret(token),
            project_id=project_id,
            user_id=user_id,
            is_admin=bool(is_admin),
            created_at=now,
            revoked=False,
        )
    )
    return token


def thd_lookup(conn, token_hash):
    return row_of(
        conn.execute(
            select(tokens).where(tokens.c.token_hash == token_hash, tokens.c.revoked.is_(False))
        ).first()
    )


# -- attach tokens ---------------------------------------------------------------


def thd_create_attach(conn, container_uuid, project_id, user_id, options, expires_at, now):
    token = new_secret()
    # Expired tokens are of no use to anyone: drop them as new ones come.
    conn.execute(attach_tokens.delete().where(attach_tokens.c.expires_at < now))
    conn.execute(
        attach_tokens.insert().values(
            token_hash=hash_secret(token),
            container_uuid=container_uuid,
            project_id=project_id,
            user_id=user_id,
            options=options,
            expires_at=expires_at,
            used=False,
        )
    )
    return token, expires_at


def thd_redeem_attach(conn, token_hash, now):
    result = conn.execute(
        attach_tokens.update()
        .where(
            attach_tokens.c.token_hash == token_hash,
            attach_tokens.c.used.is_(False),
            attach_tokens.c.expires_at >= now,
        )
        .values(used=True)
    )
    if result.rowcount != 1:
        return None
    return row_of(conn.execute(select(attach_tokens).where(attach_tokens.c.token_hash == token_hash)).first())
