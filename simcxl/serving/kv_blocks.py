"""Paged KV cache of one instance: fixed-size blocks handed out as sequences grow.

vLLM's block manager and SGLang's token pool in short: an instance's KV room (HBM after the weights)
is cut into blocks of ``block_tokens``; a sequence holds ceil(tokens / block_tokens) of them and asks
for one more whenever it crosses a block boundary. Nothing is reserved for tokens not yet generated,
which is why an engine that runs out must preempt.
"""

from __future__ import annotations


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
