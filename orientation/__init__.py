"""Explainable orientation of each SDD person to a referent type, structure and agent."""
