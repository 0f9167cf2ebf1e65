"""Data movement: links, paths, and the flow-level bandwidth sharing every transfer goes through."""
