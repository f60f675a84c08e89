"""Ingestion of CAF/MSA flows, France Travail lists, spreadsheets and provider return files."""
