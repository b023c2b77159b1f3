"""The state of the cloud: SQLAlchemy Core repositories on SQLite (default) or PostgreSQL.

`Store` (engine.py) runs statements; `schema.py` describes the tables; each other module is the
repository of one table family; `migrate.py` and `alembic/` keep the schema current.
"""

from mininova.store.engine import Store

__all__ = ["Store"]
