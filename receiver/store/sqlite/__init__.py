"""The embedded SQLite backend: the store (``store``), its batch ingest (``ingest``),
the writer thread (``groupcommit``) and WAL checkpoints off the commit path (``checkpoint``).
"""
