"""Alembic environment: migrations run on the connection peirce hands over (see orchestrator.store.database)."""

from alembic import context

from orchestrator.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - peirce always passes its connection
    raise RuntimeError("run migrations through orchestrator.store.database.open_database")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
