"""Ascendra's performance model: analytic work counts -> roofline features -> per-kind linear regressions.

Prediction (:class:`PerfModel`) is light and imported here; fitting (:func:`ascendra.perfmodel.fit.fit`), the
batch log schema (:mod:`ascendra.perfmodel.log`) and the plot live in their own modules because they pull in
pandas, scipy and matplotlib.
"""

from ascendra.perfmodel.features import FEATURES, KINDS, features
from ascendra.perfmodel.model import KindCoefficients, PerfModel
from ascendra.perfmodel.work import BatchStats, Work, WorkCounter, batch_stats

__all__ = [
    "FEATURES",
    "KINDS",
    "BatchStats",
    "KindCoefficients",
    "PerfModel",
    "Work",
    "WorkCounter",
    "batch_stats",
    "features",
]
