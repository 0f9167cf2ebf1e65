"""KV-cache managers: where KV blocks live and which flows move them from prefill to decode.

The registry names each design's connector class by its module, so choosing one by name imports that module
alone and nothing is imported for the side effect of registering it. A new design is one module and one line.
"""

from __future__ import annotations

from importlib import import_module

CONNECTORS: dict[str, str] = {  # kv_manager.type -> "module:class"
    "rdma": "simcxl.kvcache.rdma:RDMAPush",
    "rdma_pull": "simcxl.kvcache.rdma_pull:RDMAPull",
    "nixl": "simcxl.kvcache.nixl:NIXLRead",
    "lmcache": "simcxl.kvcache.lmcache:LMCachePD",
    "rdma_pool": "simcxl.kvcache.rdma_pool:RDMAPool",
    "cxl_block": "simcxl.kvcache.cxl_block:CXLBlock",
    "cxl_sparse": "simcxl.kvcache.cxl_sparse:CXLSparse",
    "rdma_sparse": "simcxl.kvcache.rdma_sparse:RDMASparse",
    "host_sparse": "simcxl.kvcache.host_sparse:HostSparse",
}


def connector_class(name: str) -> type:
    """The connector class (a :class:`~simcxl.kvcache.base.KVManager`) registered as ``kv_manager.type: NAME``."""
    module, cls = CONNECTORS[name].split(":")
    return getattr(import_module(module), cls)
