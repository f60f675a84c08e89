"""The error orientation's services raise for an action the domain refuses."""

from __future__ import annotations


class OrientationError(ValueError):
    """An action the domain refuses; the message is in French for the user."""
