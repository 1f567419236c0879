"""Adaptive partition (``--adaptive-partition``; off in the paper's system, whose ``xLyH`` split is fixed):
instances change role between low priority (LP) and high priority (HP) with load.

Load, sampled every ``PERIOD`` s of runtime by the controller: the HP side's backlog is the least loaded active
HP's predicted drain time (its batch in flight and the prefills waiting there, ``AscendraController.drain_time``),
in TTFT SLOs; the LP side's is the mean over active LPs of the predicted prefills waiting there, in TTFT SLOs.

- One more HP (LP -> HP) when the HP backlog has been above ``GROW`` (0.5 TTFT) at ``SUSTAIN`` consecutive
  samples and above the LP backlog, while at least two LPs are active: the LP with the fewest requests becomes HP.
- One HP fewer (HP -> LP) when the HP backlog has been below ``SHRINK`` (0.1 TTFT) at ``SUSTAIN`` consecutive
  samples, while at least two HPs are active: the HP with the fewest requests drains to become LP (an extra HP
  is lent for a burst and given back once the HP side is calm).
- Hysteresis: the two thresholds differ, a condition must hold ``SUSTAIN`` samples in a row, and no switch is
  decided within ``DWELL`` s of the last one.

Drain rule (a switch never strands a request): an instance being switched leaves its old role at once (no
arrivals, tickets, offloads or migrations reach it), keeps every request it holds and changes policy only when
the new one can carry all of them on: an HP waits until nothing waits there, no running request is mid-prefill
(the LP runs whole prefills only) and every running request could be recomputed whole at the LP (the LP's token
budget); an LP can switch at once (the HP takes its queue and decodes as they are). The new policy is built over
the same KV pool and takes over the waiting and running queues; the switch happens right after the instance
scheduled a batch it is computing (the instance steps again under the new policy) or while it holds no request,
and never during a migration from or to it (until its final copy is delivered: the blocks held for it are the
old policy's ``incoming``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ascendra.instance import Instance
from ascendra.kv_cache import KVPool
from ascendra.policy import BasePolicy, max_kv_tokens
from ascendra.scheduler import Scheduler

#: Seconds of runtime between load samples.
PERIOD = 0.25
#: Consecutive samples a switch condition must hold.
SUSTAIN = 4
#: Seconds after a switch decision before the next may be decided.
DWELL = 5.0
#: Backlog (in TTFT SLOs) above which a side is overloaded.
GROW = 0.5
#: HP backlog (in TTFT SLOs) below which the HP side has room to give.
SHRINK = 0.1

Policy = Callable[[KVPool], Scheduler]


@dataclass(slots=True, eq=False)
class Switch:
    """An instance leaving its role for ``to_high`` (True: LP -> HP)."""

    node: Instance
    to_high: bool


def swap_policy(node: Instance, make: Policy) -> None:
    """Give ``node`` a fresh policy from ``make`` over the same KV pool, taking over its queues and counters."""
    old: BasePolicy = node.scheduler  # type: ignore[assignment]
    new: BasePolicy = make(old.blocks)  # type: ignore[assignment]
    new.waiting = old.waiting
    new.running = old.running
    new.rejected = old.rejected
    new.num_preemptions = old.num_preemptions
    new.use_cohorts(old.cohorts)
    node.scheduler = new


class AdaptivePartition:
    """The role switches of an Ascendra cluster; ``low`` and ``high`` are the controller's lists of active
    instances, changed in place."""

    def __init__(
        self,
        low: list[Instance],
        high: list[Instance],
        make_low: Policy,
        make_high: Policy,
        backlog: Callable[[Instance], float],
        ttft_slo: float,
        low_budget: int | None,
    ) -> None:
        self.low = low
        #: The LP's whole-prefill token budget (None: it takes any prompt).
        self.low_budget = low_budget
        self.high = high
        self.make_low = make_low
        self.make_high = make_high
        self.backlog = backlog
        self.ttft_slo = ttft_slo
        #: Instances between roles (in neither list).
        self.pending: list[Switch] = []
        #: Every switch carried out: (runtime seconds, instance, new role).
        self.log: list[tuple[float, str, str]] = []
        self._next_sample = 0.0
        self._last_switch = -DWELL
        self._grow = self._shrink = 0

    def step(self, instance: Instance, nonempty_batch: bool, now: float, migrating: Callable[[Instance], bool]) -> None:
        """After ``instance`` scheduled a batch: complete the pending switches that may happen now, then sample."""
        for switch in list(self.pending):
            node = switch.node
            steps_again = node is instance and nonempty_batch
            if migrating(node) or not (steps_again or (node.idle and not node.scheduler.has_work())):
                continue
            if not switch.to_high and not self.drained(node):
                continue
            swap_policy(node, self.make_high if switch.to_high else self.make_low)
            (self.high if switch.to_high else self.low).append(node)
            self.pending.remove(switch)
            self.log.append((now, node.name, "HP" if switch.to_high else "LP"))
        if now >= self._next_sample:
            self._next_sample = now + PERIOD
            self.sample(now)

    def drained(self, node: Instance) -> bool:
        """Whether an HP may become LP: nothing waits, nothing is mid-prefill, and the LP's whole-prefill budget
        could recompute every running request."""
        policy: BasePolicy = node.scheduler  # type: ignore[assignment]
        if policy.waiting or any(r.in_prefill for r in policy.running):
            return False
        budget = self.low_budget
        return budget is None or all(max_kv_tokens(r) <= budget for r in policy.running)

    def loads(self) -> tuple[float, float]:
        """(HP backlog, LP backlog) in TTFT SLOs: the run's, a normaliser of the whole cluster's load (with SLO
        classes too: the switch thresholds are in units of one SLO, not per request)."""
        hp = min((self.backlog(i) for i in self.high), default=0.0)
        lp = sum(self.backlog(i) for i in self.low) / len(self.low) if self.low else 0.0
        return hp / self.ttft_slo, lp / self.ttft_slo

    def sample(self, now: float) -> None:
        """Count how long each switch condition has held and decide a switch when one has held long enough."""
        hp, lp = self.loads()
        self._grow = self._grow + 1 if hp > GROW and hp > lp and len(self.low) >= 2 else 0
        self._shrink = self._shrink + 1 if hp < SHRINK and len(self.high) >= 2 else 0
        if now - self._last_switch < DWELL:
            return
        if self._grow >= SUSTAIN:
            self._decide(self.low, to_high=True, now=now)
        elif self._shrink >= SUSTAIN:
            self._decide(self.high, to_high=False, now=now)

    def _decide(self, side: list[Instance], to_high: bool, now: float) -> None:
        node = min(side, key=lambda i: len(i.scheduler.running) + len(i.scheduler.waiting))  # type: ignore[attr-defined]
        side.remove(node)
        self.pending.append(Switch(node, to_high))
        self._last_switch = now
        self._grow = self._shrink = 0
