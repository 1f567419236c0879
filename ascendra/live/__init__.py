"""The live runtime: the simulator's schedulers and routers on the wall clock, executing on the real engine.

``cluster`` releases a workload's arrivals in real time through the shared coordinator, with one thread per
instance (``worker``) whose executor is a real engine (``executor``, in-process; ``ray_executor``, one Ray actor
per instance); ``engines`` loads models and sizes KV pools. The coordinator and the instance loop do not import
torch; the engine side needs the ``engine`` extra. The harness (``ascendra.harness.live_run``) builds a run
config's system on it.
"""
