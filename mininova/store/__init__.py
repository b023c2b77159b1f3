"""Embedded SQLite state (aiosqlite), numbered in-tree migrations."""

from mininova.store.db import Store

__all__ = ["Store"]
