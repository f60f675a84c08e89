"""Date-time fields of the API that carry their time zone, as OpenAPI's `date-time` format (RFC 3339)
requires (issue 22, item 10). The database keeps naive values; these fields say what they mean:

- `UtcDateTime`: a moment recorded by the system (created_at, expires_at…), stored as naive UTC;
  written with `+00:00`.
- `ParisDateTime`: a wall-clock time in the Département (an appointment, a kiosque session),
  stored as naive Europe/Paris time; written with its offset (`+01:00` or `+02:00`).

Both read a value with any offset (converted) or without one (taken in their zone, as before)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from marshmallow import fields

PARIS = ZoneInfo("Europe/Paris")


class _ZonedDateTime(fields.AwareDateTime):
    zone: dt.tzinfo = dt.UTC

    def __init__(self, **kwargs):
        super().__init__(default_timezone=self.zone, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):  # services that still format their own ISO strings
            value = dt.datetime.fromisoformat(value)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        return super()._serialize(value, attr, obj, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        aware = super()._deserialize(value, attr, data, **kwargs)
        return aware.astimezone(self.zone).replace(tzinfo=None)


class UtcDateTime(_ZonedDateTime):
    zone = dt.UTC


class ParisDateTime(_ZonedDateTime):
    zone = PARIS
