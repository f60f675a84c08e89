"""The error kiosque's services raise for a request the kiosque rules refuse."""

from __future__ import annotations


class KiosqueError(ValueError):
    """A request the kiosque rules refuse; the message is user-facing French."""
