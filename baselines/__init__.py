"""Baseline serving systems on the same runtime as Ascendra, one module each (every module with a ``SYSTEM`` is
registered); ``vllm_engine`` drives the real vLLM engine instead."""
