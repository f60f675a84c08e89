"""The process-wide wiring: settings, engine, session factory. Built once, passed explicitly."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cases.nir import NirVault, vault_for
from config import clock
from config.db import make_engine, make_session_factory, session_scope
from config.modules import connect_receivers, import_models
from config.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: NirVault = field(repr=False)

    def session(self):
        """Context manager: one committed unit of work."""
        return session_scope(self.sessions)

    def dispose(self) -> None:
        self.engine.dispose()


def build_runtime(settings: Settings | None = None) -> Runtime:
    import_models()
    connect_receivers()
    settings = settings or Settings.from_env()
    if settings.frozen_now:
        clock.freeze(dt.datetime.fromisoformat(settings.frozen_now))
    engine = make_engine(settings.database_url)
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine),
                   vault=vault_for(settings))
