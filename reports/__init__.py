"""Indicators (one definition each), xlsx exports and the managers' dashboard."""
