"""Microbenchmarks run through the simulator itself (``simcxl bench``)."""
