"""Scoring and its records: pure metrics, the paired bootstrap, append-only records, the run folder, saved label maps."""
