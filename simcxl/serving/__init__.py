"""Serving: requests, the router, prefill and decode workers, and the cluster that wires them."""
