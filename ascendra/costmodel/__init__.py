"""The simulator's calibrated GPU cost model: iteration times from measured profiles plus analytic attention.

``CostModel.load(model, gpu, tp)`` reads the packaged calibration (``ascendra/data/cost_model.json``);
``ascbench calibrate`` regenerates it from the reference profiles.
"""

from ascendra.costmodel.model import Breakdown, CostModel, packaged_path

__all__ = ["Breakdown", "CostModel", "packaged_path"]
