"""The database: SQLAlchemy models, sessions and migrations (Alembic), the content-addressed artifact store, and
the record helpers every stage writes through.

May import: errors only.
"""
