"""Ascendra: an LLM serving system that meets TTFT and TBT objectives at once, and its benchmark harness."""

__version__ = "0.1.0"
