"""Calibration on a real GPU (needs PyTorch and CUDA; the simulator itself never does)."""
