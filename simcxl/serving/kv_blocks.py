"""Paged KV cache of one instance: fixed-size blocks handed out as sequences grow.

vLLM's block manager and SGLang's token pool in short: an instance's KV room (HBM after the weights)
is cut into blocks of ``block_tokens``; a sequence holds ceil(tokens / block_tokens) of them and asks
for one more whenever it crosses a block boundary. Nothing is reserved for tokens not yet generated,
which is why an engine that runs out must preempt.
"""

from __future__ import annotations

from collections import OrderedDict


class KVBlocks:
    """Free-block accounting; each sequence's holding is kept on its request (``request.blocks``)."""

    def __init__(self, capacity_tokens: int, block_tokens: int):
        if block_tokens < 1:
            raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
        self.block_tokens = block_tokens
        self.total = capacity_tokens // block_tokens
        self.free = self.total

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens)

    def grow(self, request, tokens: int) -> bool:
        """Give ``request`` the blocks ``tokens`` of KV need; False (nothing taken) if too few are free."""
        needed = self.blocks_for(tokens) - request.blocks
        if needed > self.free:
            return False
        if needed > 0:
            self.free -= needed
            request.blocks += needed
        return True

    def take(self, count: int) -> None:
        """``count`` blocks for sequences that grow together, whose holdings their owner keeps track of."""
        if count > self.free:
            raise ValueError(f"{count} blocks asked for, {self.free} free")
        self.free -= count

    def release(self, request) -> None:
        self.free += request.blocks
        request.blocks = 0


class PrefixCachingBlocks(KVBlocks):
    """Paged KV with automatic prefix caching, vLLM v1's in short.

    A prompt's KV is cached in units of its block hashes (``hash_tokens`` each, a whole number of blocks;
    a hash stands for every token up to its end). A sequence that starts references the longest run of its
    prompt's hashes whose blocks still hold their KV, leaving at least one token to compute, and computes
    only the rest. Once a prompt is computed its blocks become shared: later sequences reference them too.
    When no running sequence references a hash its blocks are free again but keep their KV (``_cached``,
    least recently freed first) until an allocation needs them: cached blocks are free blocks, so caching
    never makes a sequence wait. A sequence's own blocks (``request.blocks``) exclude the shared ones it
    references (``request.block_refs``).
    """

    def __init__(self, capacity_tokens: int, block_tokens: int, hash_tokens: int):
        super().__init__(capacity_tokens, block_tokens)
        if hash_tokens < block_tokens or hash_tokens % block_tokens:
            raise ValueError(f"prefix caching needs a prompt hash to cover whole KV blocks: {hash_tokens} tokens "
                             f"per hash, {block_tokens} per block")
        self.hash_tokens = hash_tokens
        self.blocks_per_hash = hash_tokens // block_tokens
        self._refs: dict[int, int] = {}  # hash -> running sequences referencing its blocks (not free)
        self._cached: OrderedDict[int, None] = OrderedDict()  # free blocks still holding a hash's KV

    def _held(self, request) -> int:
        return len(request.block_refs) * self.blocks_per_hash

    def _evict(self) -> None:
        """Allocations overwrite the least recently freed cached blocks first."""
        while len(self._cached) * self.blocks_per_hash > self.free:
            self._cached.popitem(last=False)

    def grow(self, request, tokens: int) -> bool:
        needed = self.blocks_for(tokens) - request.blocks - self._held(request)
        if needed > self.free:
            return False
        if needed > 0:
            self.free -= needed
            request.blocks += needed
            self._evict()
        return True

    def take(self, count: int) -> None:
        super().take(count)
        self._evict()

    def cached_prefix(self, request) -> list[int]:
        """The longest run of ``request``'s prompt hashes whose KV is here, leaving a prompt token to compute."""
        usable = (request.input_tokens - 1) // self.hash_tokens
        hits = []
        for block_hash in request.block_hashes[:usable]:
            if block_hash not in self._refs and block_hash not in self._cached:
                break
            hits.append(block_hash)
        return hits

    def admit(self, request) -> int:
        """Reference ``request``'s cached prefix; returns the tokens it covers."""
        request.block_refs = self.cached_prefix(request)
        for block_hash in request.block_refs:
            if block_hash in self._refs:
                self._refs[block_hash] += 1
            else:
                del self._cached[block_hash]
                self.free -= self.blocks_per_hash
                self._refs[block_hash] = 1
        return len(request.block_refs) * self.hash_tokens

    def publish(self, request) -> None:
        """``request``'s prompt is computed: its whole hash blocks become shared (a hash another sequence
        published meanwhile stays a private duplicate)."""
        held = set(request.block_refs)
        for block_hash in request.block_hashes[:request.input_tokens // self.hash_tokens]:
            if block_hash in held or block_hash in self._refs or block_hash in self._cached:
                continue
            self._refs[block_hash] = 1
            request.block_refs.append(block_hash)
            request.blocks -= self.blocks_per_hash

    def release(self, request) -> None:
        """Free the sequence's own blocks; its shared ones free (keeping their KV) once nobody references
        them, the prompt's first blocks freed last so that they are overwritten last, as vLLM does."""
        super().release(request)
        for block_hash in reversed(request.block_refs):
            self._refs[block_hash] -= 1
            if not self._refs[block_hash]:
                del self._refs[block_hash]
                self._cached[block_hash] = None
                self.free += self.blocks_per_hash
        request.block_refs = []
