"""The simulation kernel under every entity: SimPy's environment as simcxl runs it, and the request."""
