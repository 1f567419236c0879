"""The machinery every batching policy shares: queues, KV reservation, decode growth with preemption, completion.

Concrete policies (vLLM, Sarathi-Serve, Ascendra's LP and HP) only decide what goes into a batch; they build
it from the helpers here so that KV accounting, preemption and bookkeeping are identical across systems.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable

from ascendra.admission import Admission
from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.request import Request


class BasePolicy(ABC):
    """Waiting and running queues over one KV block manager, implementing the ``Scheduler`` contract.

    - ``waiting``: requests holding no KV, in the order they will be considered (new arrivals at the back,
      preempted requests at the front).
    - ``running``: admitted requests, in admission order; the last one is the newest, the preemption victim.

    Admission reserves KV for the request's whole ``prefill_target`` (as vLLM allocates a prompt's blocks when
    it is admitted), so a request mid-prefill never needs new blocks; only decodes grow, one slot per step, and
    when a decode cannot grow the newest running request is preempted. With at most one batch in flight
    (``schedule`` is called again only after ``on_batch_done``), every running request is in the batch it
    belongs in, so per-iteration work is O(batch).

    A request whose KV footprint at its longest (``prompt + output - 1`` slots: the last output token is never
    fed back) exceeds the whole pool could never finish; ``add`` rejects it into ``rejected`` (its ``dropped``
    flag set) for the runtime to drain and record. Policies add their own reasons via ``_reject_reason``.

    A router moves a request with ``release`` here; its target ``adopt``s it with its KV (or ``add``s it, without).
    """

    #: Admission: skip a waiting request that does not fit and try the next (True), or stop at it (False, FCFS
    #: head-of-line blocking as in vLLM and Sarathi-Serve).
    skip_misfits: bool = False
    #: Admission control (``ascendra.admission``): drop never-started waiting requests whose TTFT SLO is lost.
    #: None: off.
    admission: Admission | None = None

    #: None: ``max_num_seqs`` is a hard cap on admission. A share of the pool: admission may pass the cap as long
    #: as that share of the KV blocks stays free (the authors' HP instance, with 0.05).
    soft_cap_free_kv: float | None = None

    #: Policies that only run whole prefills (vLLM, Ascendra's LP and HP) set this to their token budget: a
    #: request whose (re)computed prefill could ever exceed it (prompt + output - 1 tokens, the longest
    #: recompute after a preemption) is rejected on arrival instead of blocking the queue forever.
    whole_prefill_budget: int | None = None

    def __init__(self, blocks: BlockManager, max_num_seqs: int = 128) -> None:
        if max_num_seqs <= 0:
            raise UserError(f"max_num_seqs must be positive, got {max_num_seqs}")
        self.blocks = blocks
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.rejected: list[Request] = []
        self.num_preemptions = 0

    # --- the Scheduler contract -------------------------------------------------------------------------------

    def add(self, request: Request, now: float) -> None:
        """Queue an arriving request at the back, or reject it if it could never be served here."""
        if self._reject_reason(request) is not None:
            self._reject(request)
            return
        self.waiting.append(request)

    def release(self, request: Request) -> int:
        """Remove a waiting or running request (a router moves it away), freeing its KV blocks; returns the KV
        tokens it held: ``num_computed`` if it was running, 0 if it was waiting (waiting requests hold no KV).

        A request in the batch just scheduled must not be released: that batch computes it here."""
        if request in self.running:
            self.running.remove(request)
            self.blocks.free_moving(request)
            return request.num_computed
        if request not in self.waiting:
            raise ValueError(f"request {request.id} is neither waiting nor running here")
        self._take_waiting(request)
        return 0

    def adopt(self, request: Request, now: float) -> None:
        """Take in a request arriving with ``request.num_computed`` > 0 tokens of KV: reserve its blocks (its
        whole ``prefill_target`` if still in prefill, as admission does) and put it in ``running`` to continue
        with its next decode or prefill chunk.

        When it cannot continue here now (a running slot or the blocks are lacking, or it is mid-prefill and
        this policy only runs whole prefills), its KV is dropped instead: ``request.preempt()`` and to the
        front of ``waiting``, exactly as if it had been preempted here, so it recomputes rather than wait for
        room nobody may free. A request that could never be served here is rejected, as ``add`` does."""
        if self._reject_reason(request) is not None:
            self._reject(request)
            return
        need = max(request.num_computed, request.prefill_target)
        whole_prefill_only = request.in_prefill and self.whole_prefill_budget is not None
        if len(self.running) < self.max_num_seqs and not whole_prefill_only and self.blocks.can_grow(request, need):
            self.blocks.grow(request, need)
            self.running.append(request)
            return
        request.preempt()
        self.waiting.appendleft(request)
        self.num_preemptions += 1

    def drain_rejected(self) -> list[Request]:
        """The requests rejected since the last call; the runtime records them as dropped."""
        drained, self.rejected = self.rejected, []
        return drained

    @abstractmethod
    def schedule(self, now: float) -> Batch:
        """The next iteration's batch (empty when there is nothing to run); reserves its KV."""

    def on_batch_done(self, batch: Batch, now: float) -> list[Request]:
        """Advance every item's request at ``now``; free and return those that finished."""
        finished: list[Request] = []
        for item in batch.items:
            request = item.request
            if request.advance(item.num_tokens, now):
                self.blocks.free(request)
                finished.append(request)
        if finished:
            self.running = [r for r in self.running if r.finish_time is None]
        return finished

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    # --- policy hooks -----------------------------------------------------------------------------------------

    def _reject_reason(self, request: Request) -> str | None:
        """Why the request can never be served by this policy, or None. Subclasses extend this."""
        if request.prompt_len < 1 or request.output_len < 1:
            return f"needs a prompt and an output, got {request.prompt_len} and {request.output_len} tokens"
        peak = max_kv_tokens(request)
        budget = self.whole_prefill_budget
        if budget is not None and peak > budget:
            return f"a (re)computed whole prefill of up to {peak} tokens exceeds the token budget of {budget}"
        if self.blocks.blocks_for(peak) > self.blocks.num_blocks:
            return f"needs {peak} KV slots at its longest, the pool holds {self.blocks.num_token_slots}"
        return None

    def _drop_hopeless(self, now: float) -> None:
        """With ``admission`` set, move never-started waiting requests whose TTFT SLO is lost into ``rejected``."""
        if self.admission is None or not self.waiting:
            return
        hopeless = self.admission.hopeless
        lost = [r for r in self.waiting if r.first_scheduled is None and hopeless(r, now)]
        for request in lost:
            self._take_waiting(request)
            self._reject(request)

    def _reject(self, request: Request) -> None:
        """Drop a request that holds no KV: the runtime drains ``rejected`` and records it as dropped."""
        request.dropped = True
        self.rejected.append(request)

    def _replace_waiting(self, keep: list[Request]) -> None:
        """Make ``keep`` (a subsequence of the waiting queue, in order) the waiting queue."""
        if len(keep) != len(self.waiting):
            self.waiting.clear()
            self.waiting.extend(keep)

    def _admission_order(self, now: float) -> Iterable[Request]:
        """Waiting requests in the order admission considers them: FCFS. Must not mutate ``waiting``."""
        return self.waiting

    # --- building blocks for schedule() -----------------------------------------------------------------------

    def _add_item(self, batch: Batch, request: Request, num_tokens: int, is_prefill: bool, now: float) -> None:
        """Put ``num_tokens`` of ``request`` into ``batch``, reserving the KV slots they write."""
        if request.first_scheduled is None:
            request.first_scheduled = now
        self.blocks.grow(request, request.num_computed + num_tokens)
        batch.add(request, num_tokens, is_prefill)

    def _schedule_decodes(self, batch: Batch, now: float) -> None:
        """One decode token for every running request past its prefill, oldest first; when one cannot get a
        KV slot, preempt the newest running request (possibly itself) until it can."""
        running = self.running
        try_grow = self.blocks.try_grow
        add = batch.add
        i = 0
        while i < len(running):
            request = running[i]
            i += 1
            num_computed = request.num_computed
            if num_computed < request.prefill_target:
                continue
            while not try_grow(request, num_computed + 1):
                victim = running.pop()
                self._preempt(victim)
                if victim is request:
                    break
            else:
                # A decode always follows the request's prefill, so first_scheduled is already set.
                add(request, 1, False)

    def _preempt(self, request: Request) -> None:
        """Free the request's KV and put it at the front of the waiting queue to be recomputed.

        Called newest first, so after several preemptions the oldest victim is at the very front (as vLLM's
        ``extendleft`` of its preempted list)."""
        self.blocks.free(request)
        request.preempt()
        self.waiting.appendleft(request)
        self.num_preemptions += 1

    def _admit_waiting(self, batch: Batch, budget: int, now: float, chunked: bool) -> int:
        """Admit waiting requests in ``_admission_order`` while they fit; returns the token budget left.

        A request fits when a running slot is free (``max_num_seqs``; with ``soft_cap_free_kv`` set, a request
        past the cap fits as long as that share of the pool stays free after it), the blocks for its whole
        ``prefill_target`` are free, and its tokens fit the budget: the whole prefill, or with ``chunked`` a
        first chunk of ``min(prefill_target, budget left)``. A misfit stops admission unless ``skip_misfits``.
        """
        seqs_left = self.max_num_seqs - len(self.running)
        free_blocks = self.blocks.num_free
        blocks_for = self.blocks.blocks_for
        soft = self.soft_cap_free_kv
        keep_free = -1.0 if soft is None else soft * self.blocks.num_blocks
        chosen: list[tuple[Request, int]] = []
        for request in self._admission_order(now):
            if budget <= 0 or (seqs_left <= 0 and soft is None):
                break
            target = request.prefill_target
            num_tokens = min(target, budget) if chunked else target
            need = blocks_for(target)
            if num_tokens > budget or need > free_blocks or (seqs_left <= 0 and free_blocks - need < keep_free):
                if self.skip_misfits:
                    continue
                break
            chosen.append((request, num_tokens))
            budget -= num_tokens
            free_blocks -= need
            seqs_left -= 1
        for request, num_tokens in chosen:
            self._take_waiting(request)
            self.blocks.grow(request, request.prefill_target)
            self.running.append(request)
            self._add_item(batch, request, num_tokens, True, now)
        return budget

    def _take_waiting(self, request: Request) -> None:
        """Remove a request from the waiting queue: O(1) at the head (FCFS), O(n) elsewhere."""
        if self.waiting and self.waiting[0] is request:
            self.waiting.popleft()
        else:
            self.waiting.remove(request)


def max_kv_tokens(request: Request) -> int:
    """KV slots a request holds at its longest: the prompt plus every output token but the last."""
    return request.prompt_len + max(0, request.output_len - 1)
