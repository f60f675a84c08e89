"""Kiosque Insertion: sessions, invitations, phoning, messages, attendance and outcome."""

# As soon as the package is loaded: kiosque's receivers answer orientation's signals, and its
# composer (invitations, reminders) is registered with the outbox.
from kiosque import messaging, receivers  # noqa: E402, F401
