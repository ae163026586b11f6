"""Corpus conversion commands (filled in by the corpora work)."""
