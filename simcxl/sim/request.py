"""A request and its lifecycle timestamps.

Lifecycle in a disaggregated cluster:
arrival -> (queue) -> prefill_start -> (load cached prefix KV) -> prefix_load_end -> prefill_end
-> (wait for decode KV space) -> decode_admit -> kv_transfer_start -> kv_transfer_end -> first_token
-> ... -> finish.
TTFT is arrival -> first_token, where the first token is the one the decode worker streams after its
first iteration (as in vLLM's and Dynamo's disaggregated serving), so it includes the KV transfer.
In aggregated serving the instance that prefills also decodes: the first token ends the prefill.
``arrival`` is when the client sends the request; with a ``serving.frontend_latency`` the engine sees
it that much later and the client sees each token that much after ``first_token`` / ``finish`` (engine
times), and TTFT and E2E count both ways.

A request emits one token per iteration of its instance from ``join_iteration`` to ``finish_iteration``.
A preempted one (its KV dropped, recomputed later) emits in several stints: ``stints`` holds the
(first, last) iterations of each earlier one.
"""

from __future__ import annotations

import math

NOT_YET = math.nan


class Request:
    """One inference request: ``input_tokens`` of prompt, ``output_tokens`` to generate."""

    __slots__ = ("id", "arrival", "input_tokens", "output_tokens", "block_hashes",
                 "prefill_instance", "decode_instance", "prefill_start", "prefill_end",
                 "decode_admit", "kv_transfer_start", "kv_transfer_end", "first_token", "finish",
                 "kv_bytes", "join_iteration", "finish_iteration", "cached_tokens", "ideal_hit_blocks",
                 "prefix_load_end", "decode_wait", "kv_sync", "decode_kv_tokens",
                 "computed", "target", "generated", "blocks", "block_refs", "stints")

    def __init__(self, request_id: int, arrival: float, input_tokens: int, output_tokens: int,
                 block_hashes: tuple[int, ...] = ()):
        if input_tokens < 1:
            raise ValueError(f"request {request_id}: input_tokens must be >= 1, got {input_tokens}")
        if output_tokens < 1:
            raise ValueError(f"request {request_id}: output_tokens must be >= 1, got {output_tokens}")
        self.id = request_id
        self.arrival = arrival
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.block_hashes = block_hashes
        self.prefill_instance = -1
        self.decode_instance = -1
        self.prefill_start = NOT_YET
        self.prefill_end = NOT_YET
        self.decode_admit = NOT_YET
        self.kv_transfer_start = NOT_YET
        self.kv_transfer_end = NOT_YET
        self.first_token = NOT_YET
        self.finish = NOT_YET
        self.kv_bytes = 0.0
        self.join_iteration = -1
        self.finish_iteration = -1
        self.cached_tokens = 0
        self.ideal_hit_blocks = 0
        self.prefix_load_end = NOT_YET
        self.decode_wait = 0.0  # seconds waiting for KV space on the decode worker
        self.kv_sync = 0.0  # seconds of synchronization before the KV may be read (locks, flushes)
        self.decode_kv_tokens = 0  # KV tokens the decode worker must hold (0: all of prompt + output)
        self.computed = 0  # tokens whose KV the instance holds (paged, on-demand engines)
        self.target = input_tokens  # tokens to compute before the next token can be sampled (grows on recompute)
        self.generated = 0  # output tokens emitted so far
        self.blocks = 0  # KV blocks held on its instance
        self.block_refs: list[int] = []  # prompt hashes whose shared, prefix-cached blocks it references
        self.stints: tuple[tuple[int, int], ...] = ()  # (first, last) token iterations of stints cut by preemption

    def end_stint(self, last_iteration: int) -> None:
        """Preempted: the tokens it emitted through ``last_iteration`` form one stint; none until it rejoins."""
        self.stints += ((self.join_iteration, last_iteration),)
        self.join_iteration = -1

    @property
    def total_tokens(self) -> int:
        """Tokens of KV the request holds when it finishes: prompt plus generated."""
        return self.input_tokens + self.output_tokens

    def __repr__(self) -> str:
        return f"Request({self.id}, in={self.input_tokens}, out={self.output_tokens}, t={self.arrival:.6f})"
