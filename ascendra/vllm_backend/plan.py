"""What one step of a vLLM engine must execute: the policy's batch in the form the engine's adapter reads.

A ``Plan`` is built in the driver from a ``Batch`` and the instance's ``BlockManager`` and shipped as is to the
engine (in this process, or to its Ray actor), so it holds plain values only: request ids, token counts, the
KV state the policy's block manager has after scheduling (the mirror the engine's KV cache manager must match),
and the requests the engine must forget or preempt before it runs the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.request import RequestSpec
from ascendra.sampling import Sampling


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A request the engine has not seen yet: added before the step. ``output_ids`` are tokens it generated on
    another instance (a request recomputed here after a move), fed back as part of its prompt."""

    spec: RequestSpec
    output_ids: tuple[int, ...] = ()
    sampling: Sampling | None = None


@dataclass(frozen=True, slots=True)
class PlanItem:
    """``num_tokens`` of request ``request_id`` on top of ``context`` cached tokens; afterwards the policy's block
    table of the request holds ``num_blocks`` blocks, and the request emits a token iff ``emits``."""

    request_id: int
    num_tokens: int
    context: int
    num_blocks: int
    emits: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """One engine step. ``added`` come first, then ``aborted`` requests are forgotten (they left this instance:
    moved, dropped or cancelled) and ``preempted`` ones drop their KV (the policy preempted them; they will be
    recomputed here); then ``items`` run. ``num_free``: the blocks of the pool that the policy's tables of the
    requests on this engine leave free after scheduling (what vLLM's pool must have free)."""

    items: tuple[PlanItem, ...]
    num_free: int
    added: tuple[NewRequest, ...] = ()
    aborted: tuple[int, ...] = ()
    preempted: tuple[int, ...] = ()


class MirrorError(RuntimeError):
    """The engine's KV cache manager and the policy's block manager disagree, or the engine could not run the
    plan as given: a bug in the adapter or the policy, never user input."""
