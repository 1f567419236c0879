"""vLLM as an executor: each instance is a real vLLM (v1) engine that runs exactly the batches our policy chose.

One policy implementation, three executors: the cost model (simulator), the project's engine, and vLLM. The
live runtime calls the instance's policy (``schedule(now) -> Batch``) as it does for every executor; the
instance's ``VllmExecutor`` turns the batch into a ``Plan`` and the engine, started with
``SchedulerConfig.scheduler_cls = PlanScheduler``, executes it: the same requests, the same tokens per request,
the same preemptions, with vLLM's own ``KVCacheManager``, model runner, sampler and output processing.

Single source of truth for KV: the policy's ``BlockManager``. It decides admission and preemption, so its
accounting is what the policy's behaviour depends on; vLLM's ``KVCacheManager`` mirrors it. Every step the
adapter grows each scheduled request's vLLM blocks to exactly the policy's table length (look-ahead slots cover
what the policy reserves ahead: a whole prefill at admission, Orca's whole output), frees what the policy freed
(preemption, finish, abort), and checks that each request has the same number of blocks in both and that vLLM's
free blocks are the pool less what the policy's tables of the engine's requests hold, failing loudly
(``MirrorError``) otherwise (a policy may reserve blocks for a request it starts in a later step, as SLOs-Serve
does; vLLM allocates them when the request first runs). Block ids differ (vLLM picks its own physical
blocks); counts never do. vLLM's block 0 is its null block, so an engine has ``num_blocks + 1`` blocks.

Deviations: prefix caching, speculative decoding, LoRA and KV connectors are off; a move carrying KV
(DistServe's hand-off, live migration) is refused, as vLLM engines here share no KV (an offload of a request
without KV, Ascendra's, is an abort on the source engine, if it ever reached it, and an add on the target);
in-process engines run one step at a time (vLLM keeps its forward context in module globals), so on one host
instances do not overlap; with ``--distributed ray`` each engine is its own process (a GPU each on CUDA).
"""
