"""Apply Alembic migrations (`whispr-messaging migrate`, and `dev` before it serves)."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

from shared.config import Settings, normalise_database_url

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for `database_url`, normalised like the service's own engine
    (`postgresql://` means psycopg 3), since the migrations' env.py builds its engine from it."""
    database_url = normalise_database_url(database_url)
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    from shared.storage.engine import create_db_engine

    engine = create_db_engine(settings)  # makes the SQLite folder if needed
    engine.dispose()
    command.upgrade(alembic_config(settings.database_url), revision)
