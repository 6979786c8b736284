from alembic import context

from csvc.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("csvc migrations run through csvc.store.db.upgrade()")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
