"""Decodes advanced as one: the running requests of a simulated instance past their prefill, kept on one clock.

Every iteration of a policy that schedules all its running decodes together adds one token to each: simulated
request by request, that is a counter increment and a timestamp append for ~100 decodes per iteration, the
simulator's hot path. A cohort keeps one tick count and one list of tick end times instead: a member (a
``CohortMember`` while it is one) has ``num_computed`` = its base plus the tick count, and its token times are
the ticks since it joined, copied into its own list when read. Only events cost per request: joining (its
prefill done), reaching the end of a KV block (every ``block_size`` ticks), finishing, and the cohort dissolving
(anything the cohort does not follow: a preemption, a request moved away).

Members are kept in their policy's running order (``key``: the order they entered it), as the one-by-one
policy visits them: blocks are allocated and freed in that order, so block ids are those of the one-by-one path.
"""

from __future__ import annotations

from array import array
from bisect import bisect, bisect_left, insort

from ascendra.request import Request


class Cohort:
    """The members' clock (``step`` ticks so far, ``timeline`` their end times) and their events by tick."""

    __slots__ = (
        "block_size",
        "step",
        "timeline",
        "members",
        "bases",
        "keys",
        "base_sum",
        "boundary",
        "finishing",
        "leaving",
        "lent",
    )

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.step = 0
        self.timeline: array[float] = array("d")  # as members' token times are kept
        #: Members in running order, with their bases (``num_computed - step``) and order keys.
        self.members: list[Request] = []
        self.bases: list[int] = []
        #: ``members`` and ``bases`` are held by a batch (``lend``): copied before they next change.
        self.lent = False
        self.keys: list[int] = []
        self.base_sum = 0
        #: ``base % block_size`` -> (key, member, finish tick) in order: members whose next slot starts a block
        #: when ``(base + step) % block_size == 0``.
        self.boundary: dict[int, list[tuple[int, Request, int]]] = {}
        #: Tick -> (key, member) in order: members whose last token that tick emits; and per such tick, their
        #: number and the sum of their bases (a cost model's ``DecodeCounts.leaving``, offset by ``step``).
        self.finishing: dict[int, list[tuple[int, Request]]] = {}
        self.leaving: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.members)

    @property
    def kv(self) -> int:
        """Tokens cached by all members together (the sum of their contexts)."""
        return self.base_sum + len(self.members) * self.step

    def lend(self) -> tuple[list[Request], list[int]]:
        """The members and their bases as they are now, for a batch to keep: the lists themselves, which the
        cohort copies before it next changes them (most iterations change no member)."""
        self.lent = True
        return self.members, self.bases

    def _own(self) -> None:
        """Copy the lists lent to a batch before changing them."""
        if self.lent:
            self.members, self.bases, self.lent = list(self.members), list(self.bases), False

    def join(self, request: Request, key: int) -> None:
        """Take in a request past its prefill (from no cohort, or leaving another one first)."""
        request.leave_cohort()
        self._own()
        step = self.step
        base = request.num_computed - step
        request.join_cohort(self, base, len(self.timeline))
        i = bisect(self.keys, key)
        self.members.insert(i, request)
        self.bases.insert(i, base)
        self.keys.insert(i, key)
        self.base_sum += base
        finish = step + request.spec.output_tokens - request.num_generated
        insort(self.boundary.setdefault(base % self.block_size, []), (key, request, finish))
        insort(self.finishing.setdefault(finish, []), (key, request))
        left = self.leaving.get(finish)
        if left is None:
            self.leaving[finish] = [1, base]
        else:
            left[0] += 1
            left[1] += base

    def at_boundary(self, tick: int | None = None) -> list[tuple[int, Request, int]]:
        """The members whose next slot starts a new block after tick ``tick`` (default: the latest), in order, as
        (key, member, finish tick): one-by-one scheduling grows these (of those still running then)."""
        return self.boundary.get(-(self.step if tick is None else tick) % self.block_size, [])

    def tick(self, now: float) -> list[Request]:
        """An iteration of every member ended at ``now``: one token each; returns those that finished, in order
        (they have left, ``finish_time`` set)."""
        self.step += 1
        self.timeline.append(now)
        done = self._finish(self.step)
        return [request for _, request in done] if done else []

    def advance(self, ends: list[float]) -> list[Request]:
        """``len(ends)`` iterations of every member, ending at ``ends``; returns those that finished, in order."""
        first = self.step + 1
        self.step += len(ends)
        self.timeline.extend(ends)
        finished: list[tuple[int, Request]] = []
        finishing = self.finishing
        for tick in range(first, self.step + 1):
            if tick in finishing:
                finished += self._finish(tick)
        finished.sort()
        return [request for _, request in finished]

    def dissolve(self) -> None:
        """Every member leaves (its counters and token times become its own again)."""
        for request in self.members:
            request.leave_cohort()
        self.members, self.bases, self.keys, self.lent = [], [], [], False
        self.base_sum = 0
        self.boundary.clear()
        self.finishing.clear()
        self.leaving.clear()

    def _finish(self, tick: int) -> list[tuple[int, Request]]:
        """The members whose last token tick ``tick`` (ended) emitted leave, finished; returned in order."""
        done = self.finishing.pop(tick, None)
        if done is None:
            return []
        del self.leaving[tick]
        now = self.timeline[tick - 1]
        self._own()
        members, size = self.members, self.block_size
        for key, request in done:
            i = bisect_left(self.keys, key)  # members are in key order, keys unique
            base = self.bases[i]
            self.base_sum -= base
            del members[i], self.bases[i], self.keys[i]
            boundary = self.boundary[base % size]
            del boundary[bisect_left(boundary, (key,))]  # in key order too
            request.leave_cohort(tick)
            request.finish_time = now
        return done
