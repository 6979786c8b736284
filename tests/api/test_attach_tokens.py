"""
One-time attach tokens: stored hashed, single use, expire after their TTL,
bound to the container and project.
"""

from csvc.store.db import hash_secret
from tests.api.conftest import result_of


def test_a_token_works_once_and_only_before_it_expires(env):
    container = env.alice.create(command=["true"])
    store = env.store
    token, expires_at = result_of(
        store.create_attach_token(container["uuid"], "project-a", "alice", {"stdin": True}, 60)
    )
    grant = result_of(store.redeem_attach_token(token))
    assert grant["container_uuid"] == container["uuid"]
    assert grant["project_id"] == "project-a"
    assert grant["options"] == {"stdin": True}
    assert result_of(store.redeem_attach_token(token)) is None  # single use

    late, _ = result_of(store.create_attach_token(container["uuid"], "project-a", "alice", {}, 60))
    env.advance(59)
    fresh, _ = result_of(store.create_attach_token(container["uuid"], "project-a", "alice", {}, 60))
    env.advance(2)
    assert result_of(store.redeem_attach_token(late)) is None  # expired
    assert result_of(store.redeem_attach_token(fresh)) is not None
    assert result_of(store.redeem_attach_token("forged")) is None


def test_only_the_hash_is_stored(env):
    import sqlalchemy as sa

    container = env.alice.create(command=["true"])
    token, _ = result_of(env.store.create_attach_token(container["uuid"], "project-a", "alice", {}, 60))
    with env.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT token_hash FROM attach_tokens"))]
    assert stored == [hash_secret(token)]


def test_the_attach_url_is_for_the_callers_container_only(env):
    container = env.alice.create(command=["sleep", "30"], run=True)
    assert env.bob.get(f"/v1/containers/{container['uuid']}/attach").code == 404
    assert env.anonymous.get(f"/v1/containers/{container['uuid']}/attach").code == 401
