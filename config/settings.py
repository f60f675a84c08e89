"""Settings read from environment variables, each with a documented default.

One frozen object is built per process (or per test) so that nothing reads the
environment behind the caller's back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Every setting, its environment variable and its default (see README)."""

    database_url: str = field(default=f"sqlite:///{VAR / 'rsa.sqlite3'}", metadata={"env": "RSA_DATABASE_URL"})
    # The schema owner's URL, used only by `rsa db upgrade|downgrade` and `rsa init` (empty: the same
    # as RSA_DATABASE_URL). On PostgreSQL the application's role then gets only the rights it needs
    # (config.roles, docs/security.md).
    migrate_database_url: str = field(default="", metadata={"env": "RSA_MIGRATE_DATABASE_URL"})
    secret_key: str = field(default="dev-only-change-me", metadata={"env": "RSA_SECRET_KEY"})
    # Key for NIR encryption (Fernet, urlsafe base64 32 bytes) and keyed hashing; derived from
    # the secret key when empty, which is fine for development only.
    nir_key: str = field(default="", metadata={"env": "RSA_NIR_KEY"})
    inbox: str = field(default=str(VAR / "inbox"), metadata={"env": "RSA_INBOX"})
    archive: str = field(default=str(VAR / "archive"), metadata={"env": "RSA_ARCHIVE"})
    quarantine: str = field(default=str(VAR / "quarantine"), metadata={"env": "RSA_QUARANTINE"})
    reports_dir: str = field(default=str(VAR / "reports"), metadata={"env": "RSA_REPORTS_DIR"})
    outbox_dir: str = field(default=str(VAR / "outbox"), metadata={"env": "RSA_OUTBOX_DIR"})
    log_level: str = field(default="INFO", metadata={"env": "RSA_LOG_LEVEL"})
    departement: str = field(default="031", metadata={"env": "RSA_DEPARTEMENT"})
    smtp_host: str = field(default="localhost", metadata={"env": "RSA_SMTP_HOST"})
    smtp_port: int = field(default=25, metadata={"env": "RSA_SMTP_PORT"})
    smtp_user: str = field(default="", metadata={"env": "RSA_SMTP_USER"})
    smtp_password: str = field(default="", metadata={"env": "RSA_SMTP_PASSWORD"})
    smtp_starttls: bool = field(default=False, metadata={"env": "RSA_SMTP_STARTTLS"})
    mail_from: str = field(default="rsa-insertion@haute-garonne.fr", metadata={"env": "RSA_MAIL_FROM"})
    sms_url: str = field(default="", metadata={"env": "RSA_SMS_URL"})
    sms_token: str = field(default="", metadata={"env": "RSA_SMS_TOKEN"})
    token_ttl_hours: int = field(default=12, metadata={"env": "RSA_TOKEN_TTL_HOURS"})
    retention_months: int = field(default=24, metadata={"env": "RSA_RETENTION_MONTHS"})
    max_upload_mb: int = field(default=512, metadata={"env": "RSA_MAX_UPLOAD_MB"})
    scheduler_enabled: bool = field(default=True, metadata={"env": "RSA_SCHEDULER_ENABLED"})
    cors_origins: str = field(default="", metadata={"env": "RSA_CORS_ORIGINS"})
    # A fixed "now" (ISO date or date-time) for replays, demos and tests: what pages, API defaults and
    # write checks take as today (config/clock.py). Empty: the system clock. Never set in production.
    frozen_now: str = field(default="", metadata={"env": "RSA_FROZEN_NOW"})
    secure_cookies: bool = field(default=True, metadata={"env": "RSA_SECURE_COOKIES"})
    # Age (minutes) after which a stored report (the dashboards' snapshots, reports/snapshots.py) is
    # computed again; a bulk change (import, orientation run, nightly jobs) makes it stale at once.
    # 0: no snapshot, every request computes (docs/reports.md).
    report_cache_minutes: int = field(default=15, metadata={"env": "RSA_REPORT_CACHE_MINUTES"})
    # Kiosque Insertion and the outbox (docs/kiosque.md): "" = the default of kiosque.service.KiosqueConfig.
    kiosque_propose_days: str = field(default="", metadata={"env": "RSA_KIOSQUE_PROPOSE_DAYS"})
    kiosque_notice_letter_days: str = field(default="", metadata={"env": "RSA_KIOSQUE_NOTICE_LETTER_DAYS"})
    kiosque_notice_digital_days: str = field(default="", metadata={"env": "RSA_KIOSQUE_NOTICE_DIGITAL_DAYS"})
    kiosque_deadline_days: str = field(default="", metadata={"env": "RSA_KIOSQUE_DEADLINE_DAYS"})
    kiosque_reminder_days: str = field(default="", metadata={"env": "RSA_KIOSQUE_REMINDER_DAYS"})
    kiosque_max_reinvitations: str = field(default="", metadata={"env": "RSA_KIOSQUE_MAX_REINVITATIONS"})
    kiosque_max_send_attempts: str = field(default="", metadata={"env": "RSA_KIOSQUE_MAX_SEND_ATTEMPTS"})
    kiosque_backoff_minutes: str = field(default="", metadata={"env": "RSA_KIOSQUE_BACKOFF_MINUTES"})
    kiosque_contact_phone: str = field(default="", metadata={"env": "RSA_KIOSQUE_CONTACT_PHONE"})
    kiosque_template_dir: str = field(default="", metadata={"env": "RSA_KIOSQUE_TEMPLATE_DIR"})
    # France Travail (docs/imports.md, section France Travail): "file" = daily files both ways (read
    # from the inbox, written to RSA_OUTBOX_DIR/france_travail), "api" = the partner API (OAuth2
    # client credentials). The secret is read from the environment only.
    ft_mode: str = field(default="file", metadata={"env": "RSA_FT_MODE"})
    ft_api_url: str = field(default="", metadata={"env": "RSA_FT_API_URL"})
    ft_token_url: str = field(default="", metadata={"env": "RSA_FT_TOKEN_URL"})
    ft_client_id: str = field(default="", metadata={"env": "RSA_FT_CLIENT_ID"})
    ft_client_secret: str = field(default="", metadata={"env": "RSA_FT_CLIENT_SECRET"})
    ft_scope: str = field(default="api_rechercher-usagerv2 rechercheusager api_orientationusagerv1 orientationusager",
                          metadata={"env": "RSA_FT_SCOPE"})
    ft_agent_id: str = field(default="BATCH-RSA", metadata={"env": "RSA_FT_AGENT_ID"})
    ft_timeout_seconds: int = field(default=20, metadata={"env": "RSA_FT_TIMEOUT_SECONDS"})
    ft_max_attempts: int = field(default=6, metadata={"env": "RSA_FT_MAX_ATTEMPTS"})
    ft_backoff_minutes: int = field(default=30, metadata={"env": "RSA_FT_BACKOFF_MINUTES"})
    ft_stock_absences: int = field(default=2, metadata={"env": "RSA_FT_STOCK_ABSENCES"})
    ft_send_from: str = field(default="", metadata={"env": "RSA_FT_SEND_FROM"})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if name in env:
                raw = env[name]
                if f.type in ("bool", bool):
                    values[f.name] = _bool(raw)
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def is_set(cls, name: str, env: dict[str, str] | None = None) -> bool:
        """Whether the environment chooses the setting `name` (a field name) instead of its default."""
        env = os.environ if env is None else env
        return next(f for f in fields(cls) if f.name == name).metadata["env"] in env

    def documented(self) -> list[tuple[str, str]]:
        """(environment variable, default) pairs, for the README and `rsa config`."""
        return [(f.metadata["env"], str(f.default)) for f in fields(self)]
