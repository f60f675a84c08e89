"""Logging setup: one line per event, never personal data (callers log ids, not names or NIRs)."""

import logging
import re

# Defence in depth: a NIR-shaped number (13 or 15 characters, Corsica included) never reaches a log.
_NIR_LIKE = re.compile(r"(?<![0-9A-Za-z])[12378][\s.]?[0-9]{2}[\s.]?[0-9]{2}[\s.]?(?:2[AB]|[0-9]{2})"
                       r"[\s.]?[0-9]{3}[\s.]?[0-9]{3}(?:[\s.]?[0-9]{2})?(?![0-9A-Za-z])")


class RedactNir(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _NIR_LIKE.sub("[NIR masqué]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactNir) for f in handler.filters):
            handler.addFilter(RedactNir())
    for noisy in ("alembic", "apscheduler.scheduler", "apscheduler.executors", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
