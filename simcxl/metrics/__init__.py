"""Metrics: per-request records, the run summary, and the results folder."""
