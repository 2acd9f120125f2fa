"""Storage backends behind one interface (see ``base.Store``)."""

from receiver.store.base import ActionLedger, Store, StoreError, StoreUnavailable

__all__ = ["ActionLedger", "Store", "StoreError", "StoreUnavailable"]
