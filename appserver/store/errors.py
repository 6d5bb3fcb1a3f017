"""Store errors beyond the three in :mod:`appserver.store.base` (all are ``StoreError``)."""

from __future__ import annotations

from appserver.store.base import StoreError

__all__ = ["AlreadyStored", "StoreClosed", "StoreOpenError", "TurnNotStored"]


class StoreOpenError(StoreError):
    """The store file could not be opened, created or migrated (the message names the path)."""


class StoreClosed(StoreError):
    """The store was used after ``aclose()``."""


class AlreadyStored(StoreError):
    """``create_thread`` / ``start_turn`` with an id the store already holds."""


class TurnNotStored(StoreError):
    """``put_item`` / ``finish_turn`` named a turn the thread does not hold."""
