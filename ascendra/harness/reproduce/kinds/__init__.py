"""Experiment kinds: each module turns a finished grid into tables and a headline (``analyze``) and draws its
figure from those tables only (``plot``)."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from ascendra.errors import UserError

#: Kind name -> module under ascendra.harness.reproduce.kinds.
KINDS: dict[str, str] = {
    "goodput": "goodput",
    "offload": "offload",
    "fairness": "fairness",
    "admission": "admission",
    "trace": "trace",
    "perf-model": "perf_model",
    "engines": "engines",
    "baselines": "baselines",
    "sim-validation": "sim_validation",
    "slo-classes": "slo_classes",
}


def kind_module(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise UserError(f"unknown experiment kind {kind!r}; known: {', '.join(KINDS)}")
    return import_module(f"ascendra.harness.reproduce.kinds.{KINDS[kind]}")
