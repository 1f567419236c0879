"""The benchmark harness (``ascbench``): run configs, the system registry, sweeps, capacity, profiling, load
generation, reproduction of the paper's experiments, stores and the CLI.

It sits above the serving core (``ascendra`` outside this package), ``baselines`` and ``workloads``, and imports
them; none of them imports it.
"""
