"""Baseline serving policies (vLLM, Sarathi-Serve) on the same runtime as Ascendra."""
