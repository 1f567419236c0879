"""The machinery every batching policy shares: queues, KV reservation, decode growth with preemption, completion.

Concrete policies (vLLM, Sarathi-Serve, Ascendra's LP and HP) only decide what goes into a batch; they build
it from the helpers here so that KV accounting, preemption and bookkeeping are identical across systems.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ascendra.admission import Admission
from ascendra.batch import Batch, DecodeCounts
from ascendra.cohort import Cohort
from ascendra.errors import UserError
from ascendra.kv_cache import KVPool
from ascendra.request import Request

#: Finished requests up to this many leave ``running`` one by one (``list.remove``), more by rebuilding it.
_REMOVED_IN_PLACE = 4


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

    Under the simulator (``use_cohorts``) the decodes ``_schedule_decodes`` picks are the members of one
    ``Cohort``: the running requests past their prefill, sorted once as they join ``running`` (the first
    ``_known`` entries of the list ``_sorted`` have been; ``running`` may grow at its end and lose finished
    requests (``_forget_finished``), anything else that changes it must replace the list, as ``Migratable``
    does, or go through ``release``, and the cohort starts over). The batch and its completion then cost per
    request only at a join, a block boundary or a finish; a decode that cannot get its block dissolves the cohort
    and is scheduled request by request.
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

    #: The policy's next batch after a decode-only batch of every running request, with nothing waiting, is the
    #: same decodes less the finished ones for as long as no request reaches the instance: no clock-driven
    #: choice and no per-iteration state beyond this class's. The simulator then advances such runs in bulk
    #: (``steady``, ``decode_run``). Only policies that keep this class's ``on_batch_done`` may set it.
    steady_decodes: bool = False

    def __init__(self, blocks: KVPool, max_num_seqs: int = 128) -> None:
        if max_num_seqs <= 0:
            raise UserError(f"max_num_seqs must be positive, got {max_num_seqs}")
        self.blocks = blocks
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.rejected: list[Request] = []
        self.num_preemptions = 0
        #: Simulation (``use_cohorts``): the running decodes on one clock (``ascendra.cohort``); the running
        #: list whose first ``_known`` requests it has sorted, those of them still in prefill, and everyone's
        #: order key.
        self.cohorts = False
        self._cohort: Cohort | None = None
        self._sorted: list[Request] | None = None
        self._known = 0
        self._prefilling: list[Request] = []
        self._keys: dict[int, int] = {}
        self._next_key = 0

    def use_cohorts(self, on: bool = True) -> None:
        """Advance the running decodes as one ``Cohort`` (the simulator's fast path; same outcome as one by one,
        for a runtime whose batches end as scheduled: token counts are fixed, no early stop)."""
        self.cohorts = on

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
            if request.cohort is not None:  # not in a batch in flight, so no cohort batch is: all can leave
                self._dissolve(request.cohort)
            self.running.remove(request)
            self._sorted = None  # the cohort starts over
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
        """Advance every request of ``batch`` at ``now`` (decodes first, as ``Batch.items``); free and return
        those that finished."""
        blocks = self.blocks
        if batch.cohort is not None:
            finished = batch.cohort.tick(now)
            for request in finished:
                blocks.free(request)
        else:
            finished = []
            for request in batch.decodes:  # ``request.advance(1, now)`` (no cohort), inlined on the hot path
                request.num_computed += 1
                times = request.own_token_times
                times.append(now)
                if len(times) >= request.spec.output_tokens:
                    request.finish_time = now
                    blocks.free(request)
                    finished.append(request)
        for item in batch.prefills:
            request = item.request
            if request.advance(item.num_tokens, now):
                blocks.free(request)
                finished.append(request)
        if finished:
            self._forget_finished(finished)
        return finished

    def _forget_finished(self, finished: list[Request]) -> None:
        """Take the finished requests out of ``running`` (and out of what the cohort has sorted of it): a few in
        place (an iteration's finishes, found by identity in C), many by filtering the list."""
        running = self.running
        sorted_ = running is self._sorted
        if sorted_:
            unsorted = sum(1 for r in running[self._known :] if r.finish_time is not None)
            self._known -= len(finished) - unsorted
        if len(finished) <= _REMOVED_IN_PLACE:
            for request in finished:
                running.remove(request)
        else:
            self.running = [r for r in running if r.finish_time is None]
        if sorted_:
            self._sorted = self.running
            if any(r.finish_time is not None for r in self._prefilling):
                self._prefilling = [r for r in self._prefilling if r.finish_time is None]

    def steady(self, batch: Batch) -> bool:
        """Whether ``batch``, just scheduled, starts a run of identical decode steps (``steady_decodes``)."""
        return (
            self.steady_decodes
            and batch.cohort is not None
            and not self.waiting
            and not batch.prefills
            and len(batch.decodes) == len(self.running)
        )

    def decode_run(self, batch: Batch, ends_of: RunEnds, log: bool = False) -> DecodeRun:
        """Advance a run of decode steps exactly as scheduling them one by one would (the simulator's bulk path).

        ``batch`` was just scheduled and ``steady(batch)`` held: it is every member of the cohort. Each step of
        the run decodes one token of every member that has not finished yet; ``ends_of(counts, longest)`` gives
        when each step ends (step 0 is ``batch``), up to the last that may be reached before something else
        reaches this instance. A step is only taken while the blocks it needs are free (else its scheduling
        would preempt, which is left to ``schedule``). Steps ``0..steps`` are completed here (tokens, finishes, KV
        blocks allocated and freed in the order one-by-one scheduling uses), step ``steps`` too although it is
        the one left in flight on the clock: nothing that happens while it runs changes its outcome (``steady``,
        and the router's promise), so its requests are touched once here rather than again when it ends. The
        returned ``batch`` is that step's (empty unless ``log``: nobody reads a batch completed ahead)."""
        cohort = batch.cohort
        assert cohort is not None
        t0 = cohort.step
        longest = max(cohort.finishing) - t0  # the most steps a member takes part in
        ends = ends_of(DecodeCounts(len(cohort), cohort.kv, cohort.leaving, t0), longest)
        horizon = min(len(ends), longest) - 1  # the last step that could be reached
        blocks = self.blocks
        finishing = cohort.finishing
        lacking, add_blocks, at_boundary = blocks.lacking, blocks.add_blocks, cohort.at_boundary
        steps = horizon
        # Before step ``s`` is scheduled, tick ``t0 + s`` (step ``s - 1``) has ended: its finished members free
        # their blocks, then the members still running whose next slot starts a block not held yet grow.
        for s in range(1, horizon + 1):
            tick = t0 + s
            freeing = finishing.get(tick, ())
            needing = lacking(at_boundary(tick), tick)
            if needing and len(needing) > blocks.num_free + sum(blocks.num_blocks_of(r) for _, r in freeing):
                steps = s - 1
                break
            for _, request in freeing:
                blocks.free(request)
            if needing:
                add_blocks(needing)
        if steps == 0:
            return DecodeRun(0, [], batch)
        done = steps + 1  # the steps completed, the one in flight included
        logged = _logged_steps(cohort, done) if log else []
        for _, request in finishing.get(t0 + done, ()):  # freed as the step in flight ends, in order
            blocks.free(request)
        finished = cohort.advance(ends[:done])
        if finished:
            self._forget_finished(finished)
        final = logged.pop() if log else Batch()
        return DecodeRun(steps, finished, final, logged, ends)

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

    def _schedule_decodes(self, batch: Batch, now: float, prefilling: list[Request] | None = None) -> None:
        """One decode token for every running request past its prefill, oldest first; when one cannot get a
        KV slot, preempt the newest running request (possibly itself) until it can. ``prefilling`` (when given)
        collects the running requests still in prefill, in running order, sparing the caller another pass (a
        victim is always popped from the back, never one already passed)."""
        if self.cohorts:
            self._cohort_decodes(batch, prefilling)
            return
        running = self.running
        block_size = self.blocks.block_size
        try_grow = self.blocks.try_grow
        decodes = batch.decodes
        contexts = batch.decode_contexts
        # The KV of the computed tokens is held, so the next slot is in a held block unless the last one is full;
        # only then may it need a block, and possibly a preemption. Until one does, ``running`` is not changed
        # under the loop (the common case: a plain ``for``); from that request on, it is walked by index.
        # A decode always follows the request's prefill, so first_scheduled is already set.
        for request in running:
            num_computed = request.num_computed
            if num_computed < request.prefill_target:
                if prefilling is not None:
                    prefilling.append(request)
            elif num_computed % block_size or try_grow(request, num_computed + 1):
                decodes.append(request)
                contexts.append(num_computed)
            else:
                self._decodes_preempting(running.index(request), batch, prefilling)
                break

    def _cohort_decodes(self, batch: Batch, prefilling: list[Request] | None) -> None:
        """``_schedule_decodes`` with the running decodes as one ``Cohort``: only the requests that joined (their
        prefill done, or new in ``running``) and those at a block boundary are visited. A decode that cannot get
        its block dissolves the cohort and the rest is scheduled one by one, preempting as that does."""
        running = self.running
        cohort = self._cohort
        if cohort is None or running is not self._sorted or len(running) < self._known:
            cohort = self._regroup()  # something else changed ``running``: sort it all again
        if len(running) > self._known:  # appended since: admitted or adopted, in order; sorted below
            appended = running[self._known :]
            for request in appended:
                self._keys[request.id] = self._next_key
                self._next_key += 1
            self._prefilling += appended
        if self._prefilling:
            still: list[Request] = []
            for request in self._prefilling:
                if request.num_computed < request.prefill_target:
                    still.append(request)
                else:
                    cohort.join(request, self._keys[request.id])
            self._prefilling = still
        boundary = cohort.at_boundary()
        if boundary:
            stuck = self.blocks.cover_next_slots(boundary, cohort.step)
            if stuck is not None:
                self._decodes_falling_back(batch, self._keys[stuck.id], stuck, prefilling)
                return
        batch.take_cohort(cohort)
        if prefilling is not None:
            prefilling.extend(self._prefilling)
        self._sorted, self._known = running, len(running)

    def _regroup(self) -> Cohort:
        """A new cohort (the old one dissolved) with nothing sorted yet."""
        if self._cohort is not None:
            self._dissolve(self._cohort)
        self._cohort = Cohort(self.blocks.block_size)
        self._sorted, self._known, self._prefilling, self._keys = self.running, 0, [], {}
        return self._cohort

    def _dissolve(self, cohort: Cohort) -> None:
        cohort.dissolve()
        if cohort is self._cohort:
            self._cohort = None
            self._sorted, self._known, self._prefilling, self._keys = None, 0, [], {}

    def _decodes_falling_back(self, batch: Batch, key: int, request: Request, prefilling: list[Request] | None) -> None:
        """The cohort's member ``request`` (order ``key``) cannot get its block: the decodes and prefills before
        it are what one-by-one scheduling had collected; from it on, it goes one by one (preempting)."""
        cohort = self._cohort
        assert cohort is not None
        before = [(m, m.num_computed) for m, k in zip(cohort.members, cohort.keys, strict=True) if k < key]
        keys = self._keys
        prefilling_before = [r for r in self._prefilling if keys[r.id] < key]
        self._dissolve(cohort)
        for member, context in before:
            batch.add_decode(member, context)
        if prefilling is not None:
            prefilling.extend(prefilling_before)
        self._decodes_preempting(self.running.index(request), batch, prefilling)

    def _decodes_preempting(self, i: int, batch: Batch, prefilling: list[Request] | None) -> None:
        """``_schedule_decodes`` from ``running[i]``, a decode that needs a block, on: preempting as needed."""
        running = self.running
        block_size = self.blocks.block_size
        try_grow = self.blocks.try_grow
        grow_decode = self._grow_decode
        while i < len(running):
            request = running[i]
            i += 1
            num_computed = request.num_computed
            if num_computed < request.prefill_target:
                if prefilling is not None:
                    prefilling.append(request)
                continue
            if num_computed % block_size or try_grow(request, num_computed + 1) or grow_decode(request, running.pop):
                batch.add_decode(request, num_computed)

    def _grow_decode(self, request: Request, pop_victim: Callable[[], Request]) -> bool:
        """Reserve the KV slot of ``request``'s next decode, preempting ``pop_victim()`` (the newest running
        request first) until it fits; False when ``request`` itself was preempted. Every policy's decode loop
        grows through here, so preemption is the same everywhere."""
        need = request.num_computed + 1
        try_grow = self.blocks.try_grow
        while not try_grow(request, need):
            victim = pop_victim()
            self._preempt(victim)
            if victim is request:
                return False
        return True

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


#: When each step of a decode run ends, given the run in counts and the most steps any decode takes part in (the
#: simulator's cost model and clock; see ``BasePolicy.decode_run``).
RunEnds = Callable[[DecodeCounts, int], list[float]]


@dataclass(slots=True)
class DecodeRun:
    """What ``BasePolicy.decode_run`` did: steps ``0..steps`` completed (finishing ``finished``), step ``steps``
    still in flight on the clock as ``batch`` (empty unless logged), and (when asked) the batches of steps
    ``1..steps - 1`` for a batch log."""

    steps: int
    finished: list[Request]
    batch: Batch
    logged: list[Batch] = field(default_factory=list)
    #: When each step ends (from ``ends_of``).
    ends: list[float] = field(default_factory=list)


def _logged_steps(cohort: Cohort, done: int) -> list[Batch]:
    """The batches of steps ``1 .. done - 1`` of a decode run from ``cohort``'s tick, as scheduling them would
    have built them (for batch logs)."""
    t0 = cohort.step
    finish = {id(request): tick for tick, pairs in cohort.finishing.items() for _, request in pairs}
    batches = []
    for step in range(1, done):
        batch = Batch()
        for request, base in zip(cohort.members, cohort.bases, strict=True):
            if finish[id(request)] > t0 + step:
                batch.add_decode(request, base + t0 + step)
        batches.append(batch)
    return batches
