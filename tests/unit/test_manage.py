"""
csvc-manage: migrations and tokens, against a real SQLite file.
"""

import sqlalchemy as sa

from csvc import manage
from csvc.store.db import hash_secret


def test_db_upgrade_creates_the_schema(tmp_path, capsys):
    assert manage.main(["--data-dir", str(tmp_path), "db", "upgrade"]) == 0
    engine = sa.create_engine(f"sqlite:///{tmp_path}/csvc.sqlite")
    tables = set(sa.inspect(engine).get_table_names())
    assert {"tokens", "instances", "containers", "output_chunks", "alembic_version"} <= tables
    # Idempotent.
    assert manage.main(["--data-dir", str(tmp_path), "db", "upgrade"]) == 0


def test_token_create_prints_the_token_last_and_stores_it_hashed(tmp_path, capsys):
    assert manage.main(["--data-dir", str(tmp_path), "token", "create", "--project", "p1", "--admin"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(token) >= 32
    engine = sa.create_engine(f"sqlite:///{tmp_path}/csvc.sqlite")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT token_hash, project_id, user_id, is_admin FROM tokens")).all()
    assert rows == [(hash_secret(token), "p1", "p1", 1)]
    assert token not in repr(rows)
