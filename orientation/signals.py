"""Signals orientation sends so that higher packages (kiosque) can take part in its decisions without
orientation importing them (Indico's pattern: the lower module defines the signal, the higher one
connects to it). Receivers are connected when their package is imported (kiosque/__init__.py)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

failed_prior_step = _signals.signal("failed-prior-step", doc="""
Sent by orientation.deadlines.check_deadlines with `session` as sender and `person_ids` (persons not
oriented at D+35). Each receiver returns the ids among them whose earlier step failed through the
person (e.g. a Kiosque Insertion invitation unanswered or missed): the law's default to the MDS
applies to them.""")
