"""Hardware and model: what an LLM costs (FLOPs, bytes) and how fast a GPU does it."""
