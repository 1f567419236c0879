"""``ascbench reproduce``: the paper's experiments as declarative specs run on the simulator in parallel."""

from ascendra.harness.reproduce.experiment import Outcome, result_root, run_experiment
from ascendra.harness.reproduce.readme import write_readme
from ascendra.harness.reproduce.spec import Point, Spec, load_spec, load_specs

__all__ = ["Outcome", "Point", "Spec", "load_spec", "load_specs", "result_root", "run_experiment", "write_readme"]
