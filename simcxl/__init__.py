"""simcxl: a discrete-event simulator of disaggregated LLM serving over RDMA and CXL fabrics."""

__version__ = "0.1.0"
