"""The live runtime: the simulator's schedulers and routers on the wall clock, executing on the real engine.

``ascendra.live.run.run_live(config, workload, LiveOptions(device=...))`` builds the system with the simulator's
``build_system`` (same policies, same router), gives each instance a real engine as its executor, serves the
workload in real time with one thread per instance, and returns the simulator's result shape, records and
summary. The coordinator (``cluster``) and the instance loop (``worker``) do not import torch; the engine side
(``engines``, ``executor``, ``run``) needs the ``engine`` extra.
"""
