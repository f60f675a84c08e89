"""Kiosque Insertion: sessions, invitations, phoning, messages, attendance and outcome."""
