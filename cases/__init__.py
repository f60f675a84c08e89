"""Beneficiaries and households, their history, and their path (parcours) to exit."""
