"""Ascendra's migration of running requests (``--migration``; off in the paper's system): which decode moves where.

The paper's Ascendra never moves a request once it has started: a request keeps its instance even when that
instance can no longer give it a token every TBT. With ``--migration`` the controller moves running decodes with
their KV, by the core's multi-stage pre-copy (``ascendra.migration.Migrator``: each stage charged by the link
model, ``ClusterSpec.kv_move_time``), after a step of their instance when:

- the instance is an HP instance that is overloaded: prefills wait there while it holds decodes (the paper's HP
  runs prefill-only batches while anything waits, so those decodes stall; a decode-aware HP shrinks its chunks
  for them). A decode moves to a low-priority instance (HP -> LP);
- or the TBT of its running requests is at risk there: the predicted decode-only iteration of its running
  requests, plus the model's error bound for a decode batch (``Predictor.error_bound``), exceeds the TBT SLO, so
  not even a batch without prefills keeps them on time. A decode moves to any other instance (LP -> HP, LP -> LP
  or HP -> LP).

The request that moves is the decoding one with the least KV (the cheapest copy, as Llumnix's SJF). The
destination is the instance, of the wanted role, with the lightest predicted decode iteration after taking it,
among those where that stays within the TBT SLO (less the error bound), that can pre-allocate its KV and a
running slot, that are in no other migration and, for an HP, where nothing waits: so a move never makes its
destination a source. One migration per instance at a time (Llumnix's rule).

With SLO classes the TBT SLO of a set of decodes is the tightest of their own (the run's for a request without
one): an instance is at risk when its decode iteration exceeds its decodes' tightest TBT, and a destination must
stay within the tightest of its decodes and the one that moves.
"""

from __future__ import annotations

from ascendra.batch import Batch
from ascendra.instance import Instance
from ascendra.migration import Migratable, Migrator
from ascendra.perfmodel.work import batch_stats
from ascendra.request import Request
from ascendra.router import Move
from ascendra.urgency import Predictor


def decode_time(predictor: Predictor, running: list[Request], extra: Request | None = None) -> float:
    """Predicted seconds of a decode-only iteration of the decoding requests in ``running`` (and ``extra``)."""
    contexts = [r.num_computed for r in running if not r.in_prefill]
    if extra is not None:
        contexts.append(extra.num_computed)
    return predictor.perf.predict_stats(batch_stats((), contexts)) if contexts else 0.0


class Rebalancer:
    """Ascendra's migration policy over a ``Migrator`` (see the module docstring)."""

    def __init__(self, migrator: Migrator, predictor: Predictor, tbt_slo: float) -> None:
        self.migrator = migrator
        self.predictor = predictor
        #: The run's TBT SLO (requests without their own) and the model's decode error bound kept off it.
        self.tbt_slo = tbt_slo
        self.guard = predictor.error_bound("decode")

    def tbt_budget(self, requests: list[Request]) -> float:
        """The decode iteration ``requests`` allow: their tightest TBT SLO less the model's decode error bound."""
        tbt = self.tbt_slo
        return min((r.tbt_slo or tbt for r in requests), default=tbt) - self.guard

    def at_risk(self, node: Instance) -> bool:
        """Whether a decode-only iteration of ``node``'s running requests is predicted past their budget."""
        running: list[Request] = node.scheduler.running  # type: ignore[attr-defined]
        return decode_time(self.predictor, running) > self.tbt_budget(running)

    def moves_after(
        self, instance: Instance, batch: Batch, now: float, low: list[Instance], high: list[Instance], moves: list[Move]
    ) -> None:
        """Advance the migrations in progress, then start those ``instance`` needs."""
        migrator = self.migrator
        migrator.advance_migrations(instance, batch, now, moves)
        if any(instance is h for h in high) and instance.scheduler.waiting:  # type: ignore[attr-defined]
            # An overloaded HP sheds its decodes to the LPs, as many as they take.
            for request in self.candidates(instance):
                target = self.destination(request, low, high)
                if target is None:
                    break
                migrator.start_migration(request, instance, target, now, instance, batch, moves)
            return
        if migrator.sending(instance) or not self.at_risk(instance):
            return
        candidates = self.candidates(instance)
        if candidates:
            target = self.destination(candidates[0], [i for i in low + high if i is not instance], high)
            if target is not None:
                migrator.start_migration(candidates[0], instance, target, now, instance, batch, moves)

    def candidates(self, node: Instance) -> list[Request]:
        """The decoding requests of ``node`` not already migrating, least KV first."""
        running: list[Request] = node.scheduler.running  # type: ignore[attr-defined]
        in_migration = self.migrator.in_migration
        out = [r for r in running if r.num_generated and not r.in_prefill and not in_migration(r)]
        out.sort(key=lambda r: r.num_computed)
        return out

    def destination(self, request: Request, targets: list[Instance], high: list[Instance]) -> Instance | None:
        """The target with the lightest predicted decode iteration once it takes ``request`` (with what migrates
        there already), within the budget; never one that is itself shedding or an HP where anything waits."""
        best, best_time = None, float("inf")
        for node in targets:
            policy: Migratable = node.scheduler  # type: ignore[assignment]
            if self.migrator.sending(node) or not policy.can_reserve(request, request.num_computed + 1):
                continue
            if node.scheduler._reject_reason(request) is not None:  # type: ignore[attr-defined]
                continue  # it could never be served there (a whole-prefill LP's budget after a preemption)
            if any(node is h for h in high) and node.scheduler.waiting:  # type: ignore[attr-defined]
                continue
            running = [*node.scheduler.running, *policy.incoming]  # type: ignore[attr-defined]
            predicted = decode_time(self.predictor, running, request)
            if predicted <= best_time and predicted <= self.tbt_budget([*running, request]):
                best, best_time = node, predicted
        return best
