"""KV-cache managers: where KV blocks live and which flows move them from prefill to decode."""
