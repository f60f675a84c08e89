"""Kiosque Insertion: sessions, invitations, phoning, messages, attendance and outcome."""

# Connect kiosque's receivers to orientation's signals as soon as the package is loaded.
from kiosque import receivers  # noqa: E402, F401
