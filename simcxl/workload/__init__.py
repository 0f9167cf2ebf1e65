"""Workloads: the requests a run replays, from synthetic generators or real traces."""
