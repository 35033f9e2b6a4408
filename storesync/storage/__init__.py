"""Storage: the declared schema, engines for SQLite and PostgreSQL, migrations, encryption."""

from storesync.storage.engine import Database, connect
from storesync.storage.migrate import migrate

__all__ = ["Database", "connect", "migrate"]
