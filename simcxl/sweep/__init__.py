"""Sweeps: many runs of one base scenario over a grid of overrides, resumable, on any executor."""
