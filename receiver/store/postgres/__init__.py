"""The PostgreSQL backend for several replicas: the store (``store``), its SQL (``sql``),
the action ledger (``ledger``) and the schema migrations (``migrate``, ``migrations/``).
"""
