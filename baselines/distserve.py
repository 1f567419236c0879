"""DistServe: prefill and decode on separate instances, the KV cache handed over after the prefill.

Algorithm (Zhong et al., OSDI'24, sections 3-4; ``LLMServe/DistServe``: ``distserve/context_stage_scheduler.py``,
``distserve/decoding_stage_scheduler.py``, the evaluation's server flags in
``evaluation/2-benchmark-serving/2-start-api-server.py``; its simulator ``simdistserve/base/scheduler.py``):

- ``xPyD``: x prefill-only and y decode-only instances. Arrivals go to the prefill instance with the least
  work (queued requests plus the batch running), as ``simdistserve``'s dispatcher does.
- A prefill instance batches waiting requests first come, first served, as whole prompts, while the batch has
  fewer than ``prefill_max_batch`` requests (128), at most ``prefill_max_tokens`` tokens (8192) and the KV blocks
  of the batch fit beside the requests already prefilled and still held there; the first that does not fit stops
  the batch. The prefill emits the first token (TTFT ends there).
- A prefilled request keeps its KV on the prefill instance until a decode instance accepts it, first come, first
  served across prefill instances (DistServe's "unaccepted" queue). A decode instance accepts while its pool has
  room for the request's KV and its next token and fewer than ``decode_max_batch`` (1024) requests; among those
  that do, the one with the least KV in use takes it. A full decode side therefore back-pressures the prefill
  side: held requests keep their blocks there and new prefills stop fitting.
- The KV then travels over the cluster's link (``--link``: latency + bytes / bandwidth, charged by the runtime);
  the decode instance reserves the blocks when it accepts, and the request joins its decodes only when the KV
  has arrived.
- A decode instance runs decode-only batches of every running request; when a decode cannot get a KV slot the
  newest request is preempted.

Placement: DistServe searches placements by simulating each candidate at increasing rates and keeps the one with
the highest goodput per GPU (Algorithm 1; ``simdistserve/benchmarks/search_binary.py``). At TP 1 on three GPUs
the candidates are 1P2D and 2P1D; ``ascbench reproduce baselines`` runs that search on the simulator and reports
both. The default, 1P2D, is its choice on ShareGPT with Llama-3.1-8B (see ``results/README.md``).

Deviations, each for a reason:

- DistServe swaps a preempted decode's KV to host memory and back; this simulator models no host swap, so the
  decode instance recomputes it (whole, in a mixed batch with its decodes), as vLLM's default preemption does.
- DistServe's decode instance accepts a request only while its waiting queue holds under 5% of the pool's
  blocks; here accepted requests run at once (there is no separate decode waiting queue), so that condition is
  always met and the room check alone decides.
- Pipeline parallelism and the placement search over TP/PP degrees are out of scope: every instance has the
  cluster's TP degree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.router import Move
from ascendra.system import ADMISSION_HELP, BuildContext, Built, ClusterSpec, System, SystemConfig, knob


class PrefillScheduler(BasePolicy):
    """Prefill-only batches of whole prompts, FCFS; prefilled requests stay in ``running``, holding their KV,
    until the router hands them to a decode instance (``release``)."""

    def __init__(self, blocks: BlockManager, max_batch: int = 128, max_tokens: int = 8192) -> None:
        super().__init__(blocks, max_num_seqs=max_batch)
        self.max_tokens = max_tokens
        self.whole_prefill_budget = max_tokens

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._drop_hopeless(now)
        waiting, blocks = self.waiting, self.blocks
        budget = self.max_tokens
        while waiting and len(batch) < self.max_num_seqs:
            request = waiting[0]
            tokens = request.prefill_target
            if tokens > budget or not blocks.can_grow(request, tokens):
                break
            waiting.popleft()
            blocks.grow(request, tokens)
            self.running.append(request)
            self._add_item(batch, request, tokens, True, now)
            budget -= tokens
        return batch

    def held(self) -> list[Request]:
        """Prefilled requests waiting for a decode instance, in the order their prefill finished."""
        return [r for r in self.running if not r.in_prefill]


class DecodeScheduler(BasePolicy):
    """Decode-only batches of every running request; a request preempted here for lack of KV is recomputed here
    (whole, beside the decodes), since no host swap is modelled.

    ``incoming``: requests accepted whose KV is still on its way; their blocks and running slots are reserved
    (``reserve``) so that ``adopt`` always takes them in."""

    def __init__(self, blocks: BlockManager, max_batch: int = 1024, max_tokens: int = 8192) -> None:
        super().__init__(blocks, max_num_seqs=max_batch)
        self.max_tokens = max_tokens
        self.whole_prefill_budget = max_tokens
        self.incoming: list[Request] = []

    def accepts(self, request: Request) -> bool:
        """Room for the request's KV and its next token, and a free running slot."""
        seats = len(self.running) + len(self.incoming)
        return seats < self.max_num_seqs and self.blocks.can_grow(request, request.num_computed + 1)

    def reserve(self, request: Request) -> None:
        """Hold blocks for the request's KV (as DistServe allocates them when the decode side accepts it)."""
        self.blocks.grow(request, request.num_computed)
        self.incoming.append(request)

    def adopt(self, request: Request, now: float) -> None:
        self.incoming.remove(request)
        self.running.append(request)

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._schedule_decodes(batch, now)
        if self.waiting:
            self._admit_waiting(batch, self.max_tokens, now, chunked=False)
        return batch


class DistServeRouter:
    """Dispatches arrivals to prefill instances and hands prefilled requests to decode instances."""

    def __init__(self, prefill: list[Instance], decode: list[Instance]) -> None:
        self.prefill = prefill
        self.decode = decode
        self._prefill_ids = {id(i) for i in prefill}

    def route(self, request: Request, now: float) -> Instance:
        return min(self.prefill, key=lambda i: i.scheduler.num_waiting + (len(i.batch) if i.batch else 0))

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        """After a prefill instance's step, its held requests; after a decode instance's step (it may have freed
        room), every prefill instance's, oldest prefill first."""
        sources = [instance] if id(instance) in self._prefill_ids else self.prefill
        held = [(r, s) for s in sources for r in s.scheduler.held()]  # type: ignore[attr-defined]
        if len(sources) > 1:
            held.sort(key=lambda pair: pair[0].token_times[0])
        moves = []
        for request, source in held:
            target = self._decode_for(request)
            if target is None:
                break  # first come, first served: a request nobody can take blocks the ones behind it
            kv_tokens = source.scheduler.release(request)
            target.scheduler.reserve(request)  # type: ignore[attr-defined]
            moves.append(Move(request, target, kv_tokens, source=source))
        return moves

    def _decode_for(self, request: Request) -> Instance | None:
        """The decode instance with the least KV in use among those that can take the request now."""
        able = [i for i in self.decode if i.scheduler.accepts(request)]  # type: ignore[attr-defined]
        return min(able, key=lambda i: i.scheduler.blocks.num_used) if able else None  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DistServeConfig(SystemConfig):
    placement: str = knob("1P2D", "xPyD: prefill-only and decode-only instances.")
    prefill_max_batch: int = knob(128, "Max requests in a prefill batch.")
    prefill_max_tokens: int = knob(8192, "Max prompt tokens in a prefill batch.")
    decode_max_batch: int = knob(1024, "Max running requests on a decode instance.")
    admission_control: bool = knob(False, ADMISSION_HELP)

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("prefill_max_batch", "prefill_max_tokens", "decode_max_batch")
        self.prefill_decode  # noqa: B018  (validates the placement)

    @property
    def prefill_decode(self) -> tuple[int, int]:
        """(prefill, decode) instance counts of the ``xPyD`` placement."""
        match = re.fullmatch(r"(\d+)P(\d+)D", self.placement)
        if not match or int(match[1]) < 1 or int(match[2]) < 1:
            raise UserError(f"bad --placement {self.placement!r}: use xPyD with x, y >= 1, e.g. 1P2D")
        return int(match[1]), int(match[2])

    def check(self, cluster: ClusterSpec) -> None:
        num = sum(self.prefill_decode)
        if num != cluster.instances:
            raise UserError(f"--placement {self.placement} has {num} instances; pass --instances {num}")


def build(config: DistServeConfig, ctx: BuildContext) -> Built:
    """x prefill instances (``prefill0``...) then y decode instances (``decode0``...), and the router."""
    num_prefill, num_decode = config.prefill_decode
    admission = ctx.cluster.ttft_admission() if config.admission_control else None

    def prefill_policy(blocks: BlockManager) -> PrefillScheduler:
        scheduler = PrefillScheduler(blocks, config.prefill_max_batch, config.prefill_max_tokens)
        scheduler.admission = admission
        return scheduler

    def decode_policy(blocks: BlockManager) -> DecodeScheduler:
        return DecodeScheduler(blocks, config.decode_max_batch, config.prefill_max_tokens)

    prefill = [ctx.instance(f"prefill{i}", prefill_policy) for i in range(num_prefill)]
    decode = [ctx.instance(f"decode{i}", decode_policy) for i in range(num_decode)]
    return Built(prefill + decode, DistServeRouter(prefill, decode))


SYSTEM = System(
    "distserve",
    "DistServe: prefill-only and decode-only instances; the KV moves over the link after the prefill.",
    DistServeConfig,
    build,
)
