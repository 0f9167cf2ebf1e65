"""A rack-wide prefix-aware KV cache: which blocks of which prompts are cached, and on which node.

Blocks are identified by chained hashes (a block's hash covers every token before it, as vLLM's and
Mooncake's are), so a request reuses the longest run of its leading blocks that are cached. Each node
holds its blocks in one tier with a byte capacity and LRU eviction; the index is global, so any prefill
worker finds any block. The cache also keeps the bookkeeping that explains its hit rate: the ideal
(infinite cache, a block is reusable once an earlier request has sent it) and the shortfall from
blocks whose producer had not finished prefill when they were asked for.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class PrefixStats:
    looked_up_blocks: int = 0
    hit_blocks: int = 0
    ideal_hit_blocks: int = 0
    inflight_miss_blocks: int = 0
    late_hit_blocks: int = 0
    looked_up_tokens: int = 0
    hit_tokens: int = 0
    evicted_blocks: int = 0
    inserted_blocks: int = 0


class PrefixCache:
    """LRU stores of ``block_bytes`` blocks (one per node, or one for a shared pool).

    With ``rack_wide`` a global index lets any requester reuse any store's block (one copy per block);
    otherwise a requester sees only its own store, and blocks are duplicated across stores.
    """

    def __init__(self, stores: int, block_tokens: int, block_bytes: float, capacity: float | None,
                 rack_wide: bool = True):
        if block_tokens < 1:
            raise ValueError(f"prefix cache: block_tokens must be >= 1, got {block_tokens}")
        self.block_tokens = block_tokens
        self.block_bytes = block_bytes
        self.rack_wide = rack_wide
        self.capacity_blocks = math.inf if capacity is None else int(capacity // block_bytes)
        self.stores: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(stores)]
        self.location: dict[int, int] = {}
        self.announced: set[int] = set()
        self.stats = PrefixStats()

    def announce(self, hashes: tuple[int, ...]) -> int:
        """A request arrived: its blocks become reusable by later requests in the ideal. Returns its ideal hits."""
        ideal = 0
        for h in hashes:
            if h not in self.announced:
                break
            ideal += 1
        self.announced.update(hashes)
        return ideal

    def matched_nodes(self, hashes: tuple[int, ...], store: int = 0) -> list[int]:
        """The store of each leading cached block visible from ``store`` (stops at the first miss)."""
        if not self.rack_wide:
            own = self.stores[store]
            return [store] * next((i for i, h in enumerate(hashes) if h not in own), len(hashes))
        nodes = []
        for h in hashes:
            node = self.location.get(h)
            if node is None:
                break
            nodes.append(node)
        return nodes

    def cached_tokens(self, hit_blocks: int, input_tokens: int) -> int:
        """Prompt tokens a hit saves; at least one token is always computed (its logits give token 1)."""
        return min(hit_blocks * self.block_tokens, input_tokens - 1)

    def lookup(self, hashes: tuple[int, ...], input_tokens: int, ideal: int, store: int = 0) -> list[int]:
        """Record a lookup at prefill time; refresh the hits' LRU position; return their stores."""
        nodes = self.matched_nodes(hashes, store)
        for h, node in zip(hashes, nodes):
            self.stores[node].move_to_end(h)
        stats = self.stats
        stats.looked_up_blocks += len(hashes)
        stats.hit_blocks += len(nodes)
        stats.ideal_hit_blocks += ideal
        stats.inflight_miss_blocks += max(0, ideal - len(nodes))
        stats.late_hit_blocks += max(0, len(nodes) - ideal)
        stats.looked_up_tokens += input_tokens
        stats.hit_tokens += self.cached_tokens(len(nodes), input_tokens)
        return nodes

    def insert(self, hashes: tuple[int, ...], node: int) -> int:
        """Store the blocks a prefill produced on ``node``; returns how many were new there."""
        store, new = self.stores[node], 0
        for h in hashes:
            owner = self.location.get(h) if self.rack_wide else (node if h in store else None)
            if owner is not None:
                self.stores[owner].move_to_end(h)
                continue
            store[h] = None
            self.location[h] = node
            new += 1
            while len(store) > self.capacity_blocks:
                evicted, _ = store.popitem(last=False)
                if self.location.get(evicted) == node:
                    del self.location[evicted]
                self.stats.evicted_blocks += 1
        self.stats.inserted_blocks += new
        return new

    def summary(self) -> dict:
        s = self.stats
        ratio = lambda a, b: a / b if b else 0.0  # noqa: E731
        return {
            "prefix_hit_rate": ratio(s.hit_blocks, s.looked_up_blocks),
            "prefix_hit_rate_tokens": ratio(s.hit_tokens, s.looked_up_tokens),
            "ideal_prefix_hit_rate": ratio(s.ideal_hit_blocks, s.looked_up_blocks),
            "looked_up_blocks": s.looked_up_blocks,
            "hit_blocks": s.hit_blocks,
            "ideal_hit_blocks": s.ideal_hit_blocks,
            "inflight_miss_blocks": s.inflight_miss_blocks,
            "late_hit_blocks": s.late_hit_blocks,
            "inserted_blocks": s.inserted_blocks,
            "evicted_blocks": s.evicted_blocks,
            "block_tokens": self.block_tokens,
        }
