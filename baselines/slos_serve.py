"""SLOs-Serve: a dynamic program admits the requests whose SLOs it can meet; batches are sized by the TBT SLO.

Source: Chen, Jia, Khan, Krishnamurthy, Gibbons, "SLOs-Serve: Optimized Serving of Multi-SLO LLMs" (arXiv
2504.08784, 2025) and its code, github.com/gulang2019/SLOServe. The stored copy of the paper held only its abstract
and introduction (a multi-SLO DP over chunked prefill and optional speculative decoding, soft admission control,
multi-replica routing), so the rules and constants below come from the repository files named with them: the
paper-era scheduler ``SLOsServe/scheduler/`` (``scheduler.py``; ``schedule_algs.py``: ``PromaxSpecSchedulerDP``;
the C++ it calls, ``csrc/promax_spec_sch.cc`` = ``SLOsServe/scheduler/C/promax_spec_sch.cc``:
``PromaxScheduler::_admission_control``, ``_batch_impl`` and ``ARBatchPlanner::plan``), the multi-replica driver
``SLOsServe/entry_points/problem_runner.py`` and the online correction of ``SLOsServe/perf_model.py`` (a later
revision). Speculative decoding (the code's ``SDBatchPlanner``) is out of scope: every decode is one token.

Budget model (``ARBatchPlanner``): every batch holds one token of every admitted decoding request and must finish
within the TBT SLO, so with ``n`` decoders a batch may add at most ``c(n)`` prefill tokens and lasts ``T(n)``; over
``dt`` seconds the prefill budget is ``dt * c(n) / T(n)``. ``c`` and ``T`` come from Ascendra's performance model
(``PerfModel.predict_stats``: ``n`` decodes over a bound on their total context plus one chunk), inverted by
bisection in ``Planner`` and memoised.

The DP (``admission_dp``; ``_admission_control``), run every iteration on the requests that arrived since the last:
candidates are the admitted requests still in prefill (old: they must stay admitted) and the new arrivals, sorted
by prefill deadline (arrival + TTFT SLO). A request decodes from its deadline on, so the window before candidate
``i`` has ``decoders + r`` decoders, ``r`` the candidates admitted before it. State after ``i`` candidates: ``r`` ->
Pareto front of (prefill budget left over, KV blocks claimed by new ones). Admitting ``i`` needs the budget
accumulated by its deadline to cover its prefill (EDF), its whole KV footprint (prompt + output) to fit the blocks
no admitted request has claimed, and a sequence slot. Objective: the most requests (the code's profit, one each),
then the most budget left, then the fewest blocks; exact ties keep the earlier deadlines. Batches
(``_batch_impl``): one decode token for every admitted decoding request, then prefill chunks of the admitted
requests in deadline order, each as large as the batch's TBT target allows; best-effort work takes what is left.

Admission control (``scheduler.py``, the paper's soft admission): a new request the DP cannot fit is *deferred*, not
dropped: it joins a FIFO best-effort queue served only from leftover budget (its decodes too, so its TBT is not
protected), and best-effort requests are preempted first when an admitted one needs KV or a sequence slot.
Declined requests are never reconsidered for the SLO tier. ``--declined reject`` drops them instead (the code's
``do_best_effort=False``, used on every replica but the last a request tries).

Routing (``problem_runner.py``): arrival ``i`` starts at replica ``i mod N`` and tries replicas in turn; a replica
whose DP declines it hands it to the next; the last of ``route_tries`` (default: all replicas, the code's ``n_try``)
keeps it, best-effort if its DP declines it too. ``SlosServeRouter.route`` asks each replica's DP at arrival
(``probe``, which changes nothing; the replica decides again at its next iteration): the code's decline-and-forward
chain without its per-hop scheduling delay. Nothing is ever moved afterwards.

Constants: batch time target = TBT SLO - 1 ms (``schedule_algs.py``: ``tpots = [x - 0.001 ...]``); at most 16,384
tokens per batch (``MAX_BS``); online slack ``s <- max(0, s + (1 - 0.99) * clip(actual - (predicted + s), 10 ms))``
added to every predicted batch time (``perf_model.py``, ``PerfModel.update``: decay 0.99, clip 0.01 s); admitted
requests' whole KV footprints must fit the pool (``M = memory.get_n_avail(remove_best_effort=True)``). Ours: at most
128 running sequences per replica (the harness's common default; the code has no cap), at most 64 new requests per
DP round, 16 states per front, memo granularity 4,096 context tokens and 0.5 ms of slack, "full" = 90% of target.

Deviations, each with its reason:
- Budgets are fluid (the code's ``continuous`` planner mode), which makes (leftover, blocks) per ``r`` an exact DP
  state; to count whole batches only, as the code's default discrete planner does, deadlines are moved one batch
  (the time target) earlier: the fluid budget up to ``deadline - T`` is at most what whole batches finish by it.
- The decoders' context in ``c(n)`` is bounded, for a whole round, by the current decoders' context plus every
  candidate's prompt (the code's paper-era planner ignores context); chunks are planned at context 0. A request
  whose prefill is done before its deadline decodes at once (the code plans its decodes from the deadline), which
  takes a little budget the model does not count.
- An old request that can no longer meet its deadline (the predictor erred) gets the time EDF would finish it as
  its deadline; the code finds no feasible state then and declines every new request until that one is through.
- Bounds, for speed: a round considers at most ``dp_max_new`` new requests (earliest deadlines; the rest wait a
  round); a front keeps at most 16 states (exact unless more (budget, blocks) trade-offs coexist); a round in which
  every candidate fits returns at once (then all of them is the unique optimum). The code replans after 0.1 s, 10
  arrivals or 6 completions; here every iteration, which costs less in a simulator and reacts sooner.
- The online slack learns only from full batches (predicted at >= 90% of the target) and is capped at half the
  target: Ascendra's model over-predicts small batches and under-predicts full mixed ones (up to ~9% on the
  simulated A100), so the code's all-batch average cancels out exactly where the TBT target binds.
- Best-effort prefills are chunked (the code ran a best-effort prompt only whole, which never fits a budget smaller
  than the prompt); KV is reserved per prefill and grown per decode as in the other policies here, while the DP
  keeps the admitted requests' claim on their whole footprint.
- SLO classes: a request's prefill deadline is its own TTFT SLO (``--slo-classes``; the cluster's for a request
  without one), but the TBT is one tier: every batch's time target is the cluster's TBT SLO (``--tbt-slo``, set it
  to the tightest class's), where the code's DP state is a count vector over TPOT tiers.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.perfmodel import PerfModel
from ascendra.perfmodel.work import BatchStats
from ascendra.policy import BasePolicy, max_kv_tokens
from ascendra.request import Request
from ascendra.router import Move
from ascendra.system import BuildContext, Built, ClusterSpec, System, SystemConfig, knob

#: What admission control does with a request the DP cannot fit.
DECLINED = ("best-effort", "reject")
#: Performance-model feature sets (as Ascendra's).
PERF_MODELS = ("paper", "per-seq")
#: Seconds taken off the TBT SLO for a batch's time target (``schedule_algs.py``: ``tpots - 0.001``).
SLO_SLACK = 0.001
#: Most tokens in one batch (``MAX_BS``).
MAX_BATCH_TOKENS = 16384
#: Online slack: decay of the moving correction and clip of one batch's error (``perf_model.py``).
SLACK_DECAY = 0.99
SLACK_CLIP = 0.01
#: Granularity of the planner's memo: decode context in tokens (rounded up), slack in seconds (rounded up).
CONTEXT_QUANTUM = 4096
SLACK_QUANTUM = 0.0005
#: Most states kept per Pareto front of the DP.
FRONT_CAP = 16
#: A batch predicted at this share of its time target or more is "full": only those teach the online slack.
FULL = 0.9
#: Tolerance of budget comparisons (tokens), for float sums of the same windows split differently.
EPS = 1e-6


class Candidate(NamedTuple):
    """One request in a DP round."""

    #: By when its whole (remaining) prefill must be computed, seconds.
    deadline: float
    #: Prefill tokens still to compute.
    tokens: int
    #: KV blocks it claims when admitted (0 for an old request, whose claim is already counted).
    blocks: int
    #: Already admitted: it must stay admitted.
    old: bool


Rate = Callable[[int], float]


def relaxed_deadlines(now: float, decoders: int, candidates: Sequence[Candidate], rate: Rate) -> list[float] | None:
    """Deadlines with every old request's made feasible: walking the old ones in deadline order alone (EDF, the
    window before each with ``decoders`` + the old ones before it decoding), one that the budget cannot cover by
    its deadline gets the time the budget does. None when an old request can never be covered (no budget)."""
    deadlines = [c[0] for c in candidates]
    olds = [i for i, c in enumerate(candidates) if c[3]]
    if not olds:
        return deadlines
    olds.sort(key=deadlines.__getitem__)
    t, left = now, 0.0
    for k, i in enumerate(olds):
        tokens = candidates[i][1]
        speed = rate(decoders + k)
        d = max(deadlines[i], t)
        left += speed * (d - t)
        t = deadlines[i] = d
        if left + EPS < tokens:
            if speed <= 0.0:
                return None
            t = deadlines[i] = t + (tokens - left) / speed
            left = 0.0
        else:
            left -= tokens
    return deadlines


def _pareto(states: list[tuple[float, int, tuple | None]], cap: int) -> list[tuple[float, int, tuple | None]]:
    """The states no other beats on both budget left (more) and blocks (fewer); most budget first."""
    if len(states) == 1:
        return states
    states.sort(key=lambda s: (-s[0], s[1]))
    kept = []
    least = math.inf
    for state in states:
        if state[1] < least:
            kept.append(state)
            least = state[1]
            if len(kept) == cap:
                break
    return kept


def _all_fit(
    now: float,
    decoders: int,
    candidates: Sequence[Candidate],
    order: list[int],
    deadlines: list[float],
    rate: Rate,
    mem_free: float,
    seqs_free: int,
) -> bool:
    """Whether admitting every candidate is feasible (then it is the DP's unique optimum)."""
    t, left, mem, new = now, 0.0, 0, 0
    for r, i in enumerate(order):
        d = deadlines[i]
        if d > t:
            left += rate(decoders + r) * (d - t)
            t = d
        _, tokens, blocks, old = candidates[i]
        if left + EPS < tokens:
            return False
        left -= tokens
        if not old:
            mem += blocks
            new += 1
    return mem <= mem_free and new <= seqs_free


def admission_dp(
    now: float,
    decoders: int,
    candidates: Sequence[Candidate],
    rate: Rate,
    mem_free: float,
    seqs_free: int,
    front_cap: int = FRONT_CAP,
) -> list[int] | None:
    """The indices of ``candidates`` to admit (every old one included), or None if the old ones cannot be kept.

    ``rate(n)`` is the prefill budget (tokens/s) while ``n`` requests decode; ``mem_free`` the KV blocks the new
    ones may claim together, ``seqs_free`` how many new ones may be admitted. Maximises the number admitted, then
    the budget left at the end, then minimises the blocks claimed; exact ties keep the earlier deadlines."""
    speeds: dict[int, float] = {}

    def speed(n: int) -> float:
        value = speeds.get(n)
        if value is None:
            value = speeds[n] = rate(n)
        return value

    deadlines = relaxed_deadlines(now, decoders, candidates, speed)
    if deadlines is None:
        return None
    order = sorted(range(len(candidates)), key=deadlines.__getitem__)  # stable: ties keep the input order
    if _all_fit(now, decoders, candidates, order, deadlines, speed, mem_free, seqs_free):
        return list(range(len(candidates)))
    fronts: dict[int, list[tuple[float, int, tuple | None]]] = {0: [(0.0, 0, None)]}
    t = now
    old_seen = 0
    for i in order:
        deadline, tokens, blocks, old = candidates[i]
        d = deadlines[i]
        dt = d - t if d > t else 0.0
        t = max(t, d)
        nxt: dict[int, list[tuple[float, int, tuple | None]]] = {}
        for r in sorted(fronts, reverse=True):  # on a tie the earlier choice stays first (stable sorts): FCFS
            states = fronts[r]
            gain = speed(decoders + r) * dt if dt > 0.0 else 0.0
            if old:
                # Forced: every state takes it (or dies); fronts stay fronts under the same shift.
                kept = [
                    (left + gain - tokens, mem, (i, node)) for left, mem, node in states if left + gain + EPS >= tokens
                ]
                if kept:
                    nxt[r + 1] = kept
                continue
            skip = nxt.setdefault(r, [])
            take = r - old_seen < seqs_free
            for left, mem, node in states:
                left += gain
                skip.append((left, mem, node))
                if take and left + EPS >= tokens and mem + blocks <= mem_free:
                    nxt.setdefault(r + 1, []).append((left - tokens, mem + blocks, (i, node)))
        if not nxt:
            return None
        if old:
            old_seen += 1
            fronts = nxt
        else:
            fronts = {r: _pareto(states, front_cap) for r, states in nxt.items()}
    node = fronts[max(fronts)][0][2]
    chosen = []
    while node is not None:
        chosen.append(node[0])
        node = node[1]
    return sorted(chosen)


class Planner:
    """Batch-time arithmetic on Ascendra's performance model: predicted times, the largest chunk that keeps a
    batch within a time target, and the fluid prefill budget per second (memoised)."""

    def __init__(self, perf: PerfModel, max_batch_tokens: int = MAX_BATCH_TOKENS) -> None:
        self.perf = perf
        self.predict_stats = perf.predict_stats
        self.max_batch_tokens = max_batch_tokens
        self._rates: dict[tuple[int, int, int], Rate] = {}

    def time(self, tokens: int, seqs: int, pairs: int, kv: int, prefill: int, decodes: int) -> float:
        """Predicted seconds of a batch with these sufficient statistics."""
        return self.predict_stats(BatchStats(tokens, seqs, pairs, kv, prefill, decodes))

    def largest_chunk(self, acc: list[int], prior: int, most: int, limit: float) -> int:
        """The largest chunk (at most ``most`` tokens, on ``prior`` tokens of context) that keeps the batch whose
        statistics are ``acc`` (tokens, seqs, pairs, kv, prefill, decodes) within ``limit`` predicted seconds."""
        most = min(most, self.max_batch_tokens - acc[0])
        if most <= 0:
            return 0
        tokens, seqs, pairs, kv, prefill, decodes = acc
        predict = self.predict_stats

        def fits(c: int) -> bool:
            stats = BatchStats(
                tokens + c, seqs + 1, pairs + c * prior + c * (c + 1) // 2, kv + prior + c, prefill + c, decodes
            )
            return predict(stats) <= limit

        if fits(most):
            return most
        lo, hi = 0, most
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def rates(self, context: int, budget_time: float, slack: float) -> Rate:
        """``n`` -> prefill tokens per second while ``n`` requests (``context`` cached tokens in all) decode in every
        batch, each batch predicted within ``budget_time - slack`` and lasting its prediction + ``slack``. Memoised
        with the context rounded up to ``CONTEXT_QUANTUM`` tokens and the slack up to ``SLACK_QUANTUM`` seconds."""
        key = (-(-context // CONTEXT_QUANTUM), round(budget_time * 1e6), math.ceil(slack / SLACK_QUANTUM))
        known = self._rates.get(key)
        if known is not None:
            return known
        table: dict[int, float] = {}
        ctx = key[0] * CONTEXT_QUANTUM
        slack = key[2] * SLACK_QUANTUM
        limit = budget_time - slack

        def rate(n: int) -> float:
            value = table.get(n)
            if value is None:
                acc = [n, n, ctx + n, ctx + n, 0, n]
                chunk = self.largest_chunk(acc, 0, self.max_batch_tokens, limit)
                value = 0.0
                if chunk > 0:
                    seconds = self.time(n + chunk, n + 1, ctx + n + chunk * (chunk + 1) // 2, ctx + n + chunk, chunk, n)
                    value = chunk / (seconds + slack)
                table[n] = value
            return value

        self._rates[key] = rate
        return rate


def _arrival_key(request: Request) -> tuple[float, int]:
    return (request.arrival, request.id)


class SlosServeScheduler(BasePolicy):
    """One SLOs-Serve replica: DP admission into an SLO tier, TBT-sized batches, a best-effort tier.

    ``running`` holds the admitted (SLO-tier) requests first, then the best-effort ones, so the newest best-effort
    request is always the first preemption victim. ``waiting`` holds every request without KV; ``pending`` (not yet
    through the DP), ``slo_waiting`` (admitted, by deadline) and ``be_waiting`` (declined, FIFO) split it by tier.
    """

    def __init__(
        self,
        blocks: BlockManager,
        planner: Planner,
        ttft_slo: float,
        tbt_slo: float,
        max_num_seqs: int = 128,
        declined: str = "best-effort",
        slo_slack: float = SLO_SLACK,
        online_slack: bool = True,
        dp_max_new: int = 64,
    ) -> None:
        super().__init__(blocks, max_num_seqs)
        if declined not in DECLINED:
            raise UserError(f"unknown declined policy {declined!r}; known: {', '.join(DECLINED)}")
        if not 0.0 <= slo_slack < tbt_slo:
            raise UserError(f"slo_slack must be in [0, TBT SLO {tbt_slo}), got {slo_slack}")
        if dp_max_new <= 0:
            raise UserError(f"dp_max_new must be positive, got {dp_max_new}")
        self.planner = planner
        self.ttft_slo = ttft_slo
        self.tbt_slo = tbt_slo
        #: The longest a batch may take: the time target of every batch and the DP's deadline margin.
        self.budget_time = tbt_slo - slo_slack
        self.declined = declined
        self.online_slack = online_slack
        self.dp_max_new = dp_max_new
        #: Learned seconds the perf model under-predicts a batch by (added to every prediction).
        self.slack = 0.0
        self.pending: list[Request] = []
        self.slo_waiting: list[Request] = []
        self.be_waiting: deque[Request] = deque()
        #: SLO-tier requests (running or waiting) -> the KV blocks of their whole footprint, and their sum.
        self.slo: dict[int, int] = {}
        self.slo_blocks = 0
        #: How many of ``running`` (a prefix) are SLO-tier.
        self.n_slo_running = 0
        self.num_admitted = 0
        self.num_declined = 0
        self._started: float | None = None
        self._predicted = 0.0
        self._limit = 0.0

    # --- the Scheduler contract -------------------------------------------------------------------------------

    def add(self, request: Request, now: float) -> None:
        if self._reject_reason(request) is not None:
            self._reject(request)
            return
        self.waiting.append(request)
        self.pending.append(request)

    def adopt(self, request: Request, now: float) -> None:
        """SLOs-Serve never moves a request; one arriving with KV anyway is recomputed like a new arrival."""
        if request.num_computed:
            request.preempt()
            self.num_preemptions += 1
        self.add(request, now)

    def release(self, request: Request) -> int:
        footprint = self.slo.pop(request.id, None)
        if footprint is not None:
            self.slo_blocks -= footprint
        if request in self.running:
            index = self.running.index(request)
            del self.running[index]
            if index < self.n_slo_running:
                self.n_slo_running -= 1
            self.blocks.free(request)
            return request.num_computed
        if request not in self.waiting:
            raise ValueError(f"request {request.id} is neither waiting nor running here")
        self._take_waiting(request)
        for queue in (self.pending, self.slo_waiting, self.be_waiting):
            if request in queue:
                queue.remove(request)
        return 0

    def on_batch_done(self, batch: Batch, now: float) -> list[Request]:
        if self.online_slack and self._started is not None and self._predicted >= FULL * self._limit:
            error = (now - self._started) - (self._predicted + self.slack)
            error = min(max(error, -SLACK_CLIP), SLACK_CLIP)
            # Kept below half the target so that a batch always has room (the code leaves it unbounded).
            self.slack = min(max(self.slack + (1.0 - SLACK_DECAY) * error, 0.0), 0.5 * self.budget_time)
        self._started = None
        finished = super().on_batch_done(batch, now)
        for request in finished:
            footprint = self.slo.pop(request.id, None)
            if footprint is not None:
                self.slo_blocks -= footprint
                self.n_slo_running -= 1
        return finished

    # --- admission --------------------------------------------------------------------------------------------

    def footprint(self, request: Request) -> int:
        """KV blocks of the request at its longest (prompt + output - 1 tokens): what admission claims."""
        return self.blocks.blocks_for(max_kv_tokens(request))

    def deadline(self, request: Request) -> float:
        """By when its prefill must be computed in the DP: the TTFT deadline less one batch (whole batches)."""
        return request.arrival + (request.ttft_slo or self.ttft_slo) - self.budget_time

    def decide(self, now: float, new: list[Request]) -> list[Request]:
        """The requests of ``new`` the DP admits next to the SLO tier already here (nothing is changed)."""
        running = self.running
        ttft, budget = self.ttft_slo, self.budget_time  # deadline() of each, inlined: this runs for every arrival
        decoders = context = 0
        candidates: list[Candidate] = []
        for i in range(self.n_slo_running):
            request = running[i]
            computed, target = request.num_computed, request.prefill_target
            if computed < target:
                deadline = request.spec.arrival + ((request.ttft_slo or ttft) - budget)
                candidates.append((deadline, target - computed, 0, True))  # type: ignore[arg-type]
                context += target
            else:
                decoders += 1
                context += computed
        for request in self.slo_waiting:
            target = request.prefill_target
            deadline = request.spec.arrival + ((request.ttft_slo or ttft) - budget)
            candidates.append((deadline, target - request.num_computed, 0, True))  # type: ignore[arg-type]
            context += target
        first_new = len(candidates)
        blocks_for = self.blocks.blocks_for
        for request in new:
            target = request.prefill_target
            footprint = blocks_for(max_kv_tokens(request))
            deadline = request.spec.arrival + ((request.ttft_slo or ttft) - budget)
            candidates.append((deadline, target, footprint, False))  # type: ignore[arg-type]
            context += target
        rate = self.planner.rates(context, self.budget_time, self.slack)
        mem_free = self.blocks.num_blocks - self.slo_blocks
        seqs_free = self.max_num_seqs - len(self.slo)
        chosen = admission_dp(now, decoders, candidates, rate, mem_free, seqs_free)
        if chosen is None:
            return []
        return [new[i - first_new] for i in chosen if i >= first_new]

    def probe(self, request: Request, now: float) -> bool:
        """Whether this replica's DP would admit ``request`` now, next to its admitted and pending requests."""
        if self._reject_reason(request) is not None:
            return False
        new = sorted([*self.pending, request], key=_arrival_key)[: self.dp_max_new]
        return any(r is request for r in self.decide(now, new))

    def _admit(self, now: float) -> None:
        """One DP round over the pending arrivals (the earliest ``dp_max_new``): admit or decline each."""
        pending = self.pending
        pending.sort(key=_arrival_key)
        new, self.pending = pending[: self.dp_max_new], pending[self.dp_max_new :]
        admitted = {id(r) for r in self.decide(now, new)}
        for request in new:
            if id(request) in admitted:
                footprint = self.footprint(request)
                self.slo[request.id] = footprint
                self.slo_blocks += footprint
                insort(self.slo_waiting, request, key=_arrival_key)
                self.num_admitted += 1
            else:
                self.num_declined += 1
                if self.declined == "reject":
                    self._take_waiting(request)
                    self._reject(request)
                else:
                    self.be_waiting.append(request)

    # --- batches ----------------------------------------------------------------------------------------------

    def _pop_victim(self) -> Request:
        """Take the newest running request out of ``running`` (best-effort ones are newest)."""
        victim = self.running.pop()
        if len(self.running) < self.n_slo_running:
            self.n_slo_running -= 1
        return victim

    def _preempt(self, request: Request) -> None:
        """Free the request's KV; it waits, first in its tier, to be recomputed."""
        self.blocks.free(request)
        request.preempt()
        self.waiting.appendleft(request)
        self.num_preemptions += 1
        if request.id in self.slo:
            self.slo_waiting.insert(0, request)
        else:
            self.be_waiting.appendleft(request)

    def _start(self, request: Request, slo: bool) -> None:
        """Move a waiting request into ``running`` (SLO ones before the best-effort ones) with its prefill's KV."""
        self._take_waiting(request)
        if slo:
            self.slo_waiting.remove(request)
            self.running.insert(self.n_slo_running, request)
            self.n_slo_running += 1
        else:
            self.be_waiting.remove(request)
            self.running.append(request)
        self.blocks.grow(request, request.prefill_target)

    def _chunk(self, batch: Batch, request: Request, acc: list[int], limit: float, now: float) -> bool:
        """Add the largest chunk of ``request``'s prefill that keeps the batch within ``limit`` (at least one token
        in an otherwise empty batch); True if its whole remaining prefill went in."""
        rem = request.remaining_prefill
        prior = request.num_computed
        c = self.planner.largest_chunk(acc, prior, rem, limit)
        if c == 0:
            if batch:
                return False
            c = 1
        self._add_item(batch, request, c, True, now)
        acc[0] += c
        acc[1] += 1
        acc[2] += c * prior + c * (c + 1) // 2
        acc[3] += prior + c
        acc[4] += c
        return c == rem

    def _room(self, request: Request) -> bool:
        """Make a sequence slot and the blocks of ``request``'s prefill free for an SLO start, preempting
        best-effort requests (newest first); False if that is not enough."""
        running = self.running
        need = self.blocks.blocks_for(request.prefill_target)
        while len(running) >= self.max_num_seqs or self.blocks.num_free < need:
            if len(running) == self.n_slo_running:
                return False
            self._preempt(self._pop_victim())
        return True

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        if self.pending:
            self._admit(now)
        limit = self.budget_time - self.slack
        running = self.running
        try_grow = self.blocks.try_grow
        block_size = self.blocks.block_size

        # 1. One decode token for every admitted request past its prefill (never stalled). The KV of the
        # computed tokens is held, so only a decode whose last block is full may need a block (or a preemption).
        decodes = pairs = 0
        prefilling: list[Request] = []
        # ``batch.add_decode``, inlined on the hot path (~45 decodes an iteration)
        decode_requests, decode_contexts = batch.decodes.append, batch.decode_contexts.append
        i = 0
        while i < self.n_slo_running:
            request = running[i]
            i += 1
            num_computed = request.num_computed
            if num_computed < request.prefill_target:
                prefilling.append(request)
                continue
            if (
                num_computed % block_size
                or try_grow(request, num_computed + 1)
                or self._grow_decode(request, self._pop_victim)
            ):
                decode_requests(request)
                decode_contexts(num_computed)
                decodes += 1
                pairs += num_computed + 1
        acc = [decodes, decodes, pairs, pairs, 0, decodes]

        # 2. Admitted prefills in deadline order, each chunk as large as the TBT target allows.
        full = False
        if prefilling or self.slo_waiting:
            started = {id(r) for r in prefilling}
            order = sorted(prefilling + self.slo_waiting, key=_arrival_key) if self.slo_waiting else prefilling
            for request in order:
                if id(request) not in started:
                    if not self._room(request):
                        full = True
                        break
                    self._start(request, slo=True)
                if not self._chunk(batch, request, acc, limit, now):
                    full = True
                    break

        # 3. Best effort, from what is left: decodes, then prefill chunks (FIFO).
        if not full and (len(running) > self.n_slo_running or self.be_waiting):
            self._best_effort(batch, acc, limit, now)

        if batch:
            self._started = now
            self._predicted = self.planner.time(*acc)
            self._limit = limit
        elif self.pending:
            return self.schedule(now)  # every arrival of that round was dropped: take the next round
        return batch

    def _best_effort(self, batch: Batch, acc: list[int], limit: float, now: float) -> None:
        running = self.running
        first = self.n_slo_running
        decoding = [r for r in running[first:] if not r.in_prefill]
        if decoding:
            # How many fit (in order): bisect on the prefix, each decode adding one token on its context.
            prefix = [0]
            for request in decoding:
                prefix.append(prefix[-1] + request.num_computed + 1)
            time = self.planner.time
            tokens, seqs, pairs, kv, prefill, decodes = acc

            def fits(k: int) -> bool:
                return time(tokens + k, seqs + k, pairs + prefix[k], kv + prefix[k], prefill, decodes + k) <= limit

            lo, hi = 0, len(decoding)
            if fits(hi):
                lo = hi
            else:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if fits(mid):
                        lo = mid
                    else:
                        hi = mid
            if lo == 0 and not batch:
                lo = 1
            try_grow = self.blocks.try_grow
            block_size = self.blocks.block_size
            i = first
            while i < len(running) and lo > 0:
                request = running[i]
                i += 1
                num_computed = request.num_computed
                if num_computed < request.prefill_target:
                    continue
                if (
                    num_computed % block_size
                    or try_grow(request, num_computed + 1)
                    or self._grow_decode(request, self._pop_victim)
                ):
                    batch.add_decode(request, num_computed)
                    lo -= 1
                    acc[0] += 1
                    acc[1] += 1
                    acc[2] += num_computed + 1
                    acc[3] += num_computed + 1
                    acc[5] += 1
        for request in [r for r in running[self.n_slo_running :] if r.in_prefill]:
            if not self._chunk(batch, request, acc, limit, now):
                return
        blocks_for = self.blocks.blocks_for
        while self.be_waiting and len(running) < self.max_num_seqs:
            request = self.be_waiting[0]
            if blocks_for(request.prefill_target) > self.blocks.num_free:
                return
            self._start(request, slo=False)
            if not self._chunk(batch, request, acc, limit, now):
                return


class SlosServeRouter:
    """The paper's multi-replica routing: arrival ``i`` tries replicas ``i, i+1, ...`` (mod N) and goes to the first
    whose DP admits it; the last of ``tries`` takes it regardless (its DP decides again: best effort or drop)."""

    def __init__(self, instances: list[Instance], tries: int = 0) -> None:
        self.instances = instances
        self.tries = min(tries, len(instances)) if tries > 0 else len(instances)
        self._next = 0

    def route(self, request: Request, now: float) -> Instance:
        n = len(self.instances)
        start = self._next
        self._next = (start + 1) % n
        for k in range(self.tries - 1):
            instance = self.instances[(start + k) % n]
            scheduler: SlosServeScheduler = instance.scheduler  # type: ignore[assignment]
            if scheduler.probe(request, now):
                return instance
        return self.instances[(start + self.tries - 1) % n]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        return []


@dataclass(frozen=True, slots=True)
class SlosServeConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    declined: str = knob(
        "best-effort",
        "A request the DP cannot fit: served best-effort from leftover budget (the paper's soft admission) or dropped.",
        DECLINED,
    )
    route_tries: int = knob(0, "Replicas a request tries in turn before it is declined (0: all, the code's default).")
    slo_slack: float = knob(SLO_SLACK, "Seconds kept off the TBT SLO when sizing a batch (the code's 1 ms).")
    online_slack: bool = knob(True, "Learn the perf model's under-prediction online and add it to batch times.")
    max_batch_tokens: int = knob(MAX_BATCH_TOKENS, "Most tokens in one batch (the code's MAX_BS).")
    dp_max_new: int = knob(64, "Most new requests one DP round considers (earliest deadlines first).")
    perf_model: str = knob("paper", "Performance-model features: paper (4 roofline) or per-seq.", PERF_MODELS)

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs", "max_batch_tokens", "dp_max_new")
        if self.route_tries < 0:
            raise UserError(f"--route-tries must be >= 0, got {self.route_tries}")
        if self.slo_slack < 0:
            raise UserError(f"--slo-slack must be >= 0, got {self.slo_slack}")

    def check(self, cluster: ClusterSpec) -> None:
        if self.slo_slack >= cluster.tbt_slo:
            raise UserError(f"--slo-slack {self.slo_slack} leaves no time in the TBT SLO of {cluster.tbt_slo} s")


def build(config: SlosServeConfig, ctx: BuildContext) -> Built:
    """One SLOs-Serve replica per GPU (sharing one planner memo) behind the admission-probing router."""
    cluster = ctx.cluster
    perf = PerfModel.load(cluster.model, cluster.gpu, cluster.tp, per_seq=config.perf_model == "per-seq")
    planner = Planner(perf, config.max_batch_tokens)

    def policy(blocks: BlockManager) -> SlosServeScheduler:
        return SlosServeScheduler(
            blocks,
            planner,
            cluster.ttft_slo,
            cluster.tbt_slo,
            max_num_seqs=config.max_num_seqs,
            declined=config.declined,
            slo_slack=config.slo_slack,
            online_slack=config.online_slack,
            dp_max_new=config.dp_max_new,
        )

    instances = [ctx.instance(f"gpu{i}", policy) for i in range(cluster.instances)]
    return Built(instances, SlosServeRouter(instances, config.route_tries))


SYSTEM = System(
    "slos-serve",
    "SLOs-Serve: a DP admits what meets its SLOs, TBT-sized chunked batches, routing to a replica that admits.",
    SlosServeConfig,
    build,
)
