"""Where the points of a sweep, a capacity grid or a reproduction run: in this process, in a local process pool,
or as tasks on a Ray cluster, behind one ``concurrent.futures.Executor`` interface.

A point is one simulated run (rate x seed x system); it is a pure function of its config, so where it runs does
not change its result. Workers only compute and return ``(records, summary row)``: the driver writes every point
into its point store as it arrives, so the store, its resume semantics and the tables built from it are the same
whichever executor ran the points, and a Ray cluster needs no file system shared with the driver (each node does
need the project installed, and the trace files at the same ``--data-dir`` when a workload reads one).

``run_each`` feeds an executor from a lazy iterable, keeping at most ``width`` points in flight, so a caller can
stop handing out points (a sweep past saturation) while earlier ones are still running.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from ascendra.errors import UserError
from ascendra.extras import needs

#: The executors ``--executor`` accepts.
EXECUTORS = ("local", "ray")
#: CPUs a Ray task asks for: a simulated point is single-threaded, so one core each (Ray also caps the task's
#: OpenMP threads at it); fractional shares would only oversubscribe the cores.
RAY_CPUS_PER_POINT = 1.0

K = TypeVar("K")
A = TypeVar("A")
R = TypeVar("R")


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """The command line's choice: ``kind`` (local or ray), ``jobs`` (points at once; None: the kind's default)
    and, for Ray, the cluster to join (None: ``RAY_ADDRESS`` if set, else a local Ray started here)."""

    kind: str = "local"
    jobs: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise UserError(f"unknown --executor {self.kind!r}; known: {', '.join(EXECUTORS)}")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")
        if self.ray_address is not None and self.kind != "ray":
            raise UserError("--ray-address needs --executor ray")

    @property
    def parallel(self) -> bool:
        """Whether points may run outside this process (the live backends refuse it)."""
        return self.kind == "ray" or (self.jobs or 1) > 1


class InlineExecutor(Executor):
    """Runs each point at submission, in this process: the sequential default, which alone can report a
    simulated point's per-request progress."""

    width = 1
    in_process = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # handed to the caller through the future, as a pool would
            future.set_exception(exc)
        return future


class LocalPool(ProcessPoolExecutor):
    """A process pool of ``jobs`` workers on this machine."""

    in_process = False

    def __init__(self, jobs: int) -> None:
        super().__init__(max_workers=jobs)
        self.width = jobs


def _check_reachable(address: str) -> None:
    """Fail in one line when a ``host:port`` cluster address does not answer (Ray itself retries for minutes);
    ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The body of every Ray task: ``fn`` travels by reference (a module function), its arguments by value."""
    return fn(*args, **kwargs)


class RayPool(Executor):
    """Ray tasks of one CPU each on the cluster at ``address``; a local Ray (of ``jobs`` CPUs when given) is
    started when there is no cluster to join, and shut down on exit. A Ray that is already running in this
    process is used as it is and left up."""

    in_process = False

    def __init__(self, address: str | None, jobs: int | None) -> None:
        with needs("dist", what="--executor ray"):
            import ray
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address is not None:
                _check_reachable(address)
            joining = address is not None or "RAY_ADDRESS" in os.environ
            local = {} if joining else {"num_cpus": jobs, "_node_ip_address": "127.0.0.1"}
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    **local,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or os.environ.get("RAY_ADDRESS")
                raise UserError(f"cannot start or join Ray{f' at {where}' if where else ''}: {exc}") from None
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        self.width = jobs or max(1, int(cpus // RAY_CPUS_PER_POINT))
        self._task = ray.remote(num_cpus=RAY_CPUS_PER_POINT, max_retries=0)(_call)
        self._refs: dict[Future, Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        ref = self._task.remote(fn, *args, **kwargs)
        future: Future = Future()
        self._refs[future] = ref

        def relay(done: Future) -> None:
            self._refs.pop(future, None)
            if future.cancelled():
                return
            if done.cancelled():
                future.cancel()
            elif (exc := done.exception()) is not None:
                future.set_exception(self._unwrap(exc))
            else:
                future.set_result(done.result())

        ref.future().add_done_callback(relay)
        return future

    def _unwrap(self, exc: BaseException) -> BaseException:
        """A task's own exception as the task raised it (a ``UserError`` stays one line; the remote traceback
        rides along as its cause); Ray's failures (a lost worker or node) as one line."""
        errors = self._ray.exceptions
        if isinstance(exc, errors.RayTaskError) and isinstance(exc.cause, Exception):
            exc.cause.__cause__ = exc
            return exc.cause
        if isinstance(exc, errors.RayError):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return UserError(f"a point failed on Ray: {first}")
        return exc

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for ref in list(self._refs.values()):
                self._ray.cancel(ref, force=True)
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


def open_executor(options: ExecutorOptions, default_jobs_local: int = 1) -> Executor:
    """The executor ``options`` name (a context manager: leaving it shuts the pool or the started Ray down).
    A local executor of one job runs the points inline, in this process."""
    if options.kind == "ray":
        return RayPool(options.ray_address, options.jobs)
    jobs = options.jobs or default_jobs_local
    return InlineExecutor() if jobs <= 1 else LocalPool(jobs)


def run_each(
    executor: Executor,
    fn: Callable[[A], R],
    items: Iterable[tuple[K, A]],
    on_done: Callable[[K, R], None],
) -> None:
    """For every ``(key, argument)`` of ``items``: ``fn(argument)`` on the executor, then ``on_done(key, result)``
    here, as each finishes, with at most the executor's ``width`` in flight. ``items`` is read lazily, one per
    free slot; only the argument travels to a worker. A failing point raises here after the points still in
    flight are cancelled (a pool's running ones finish; their results are dropped)."""
    width = getattr(executor, "width", 1)
    source = iter(items)
    pending: dict[Future, K] = {}

    def fill() -> None:
        while len(pending) < width and (item := next(source, None)) is not None:
            key, argument = item
            pending[executor.submit(fn, argument)] = key

    try:
        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=list(pending).index):  # submission order among simultaneous ones
                on_done(pending.pop(future), future.result())
            fill()
    except BaseException:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
