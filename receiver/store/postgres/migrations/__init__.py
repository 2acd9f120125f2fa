"""PostgreSQL schema migrations: ``NNNN_name.sql``, applied in order, each once.

``receiver.store.postgres.migrate`` records every applied file in
``schema_migrations``; add a change as a new numbered file, never by editing
an applied one.
"""
