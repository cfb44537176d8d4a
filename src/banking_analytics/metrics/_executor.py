"""One bounded pool of query threads per store, shared by everything that runs queries at once.

A dashboard runs its parts concurrently, and a part may fan out again (the
connection analysis runs its cuts beside its headline). Every such fan-out goes
through :meth:`QueryExecutor.gather` on the store's one executor, so the number
of threads running queries is bounded by its size, however deep the nesting
and however many callers, plus the callers themselves.

Nested fan-out cannot deadlock: the thread that gathers takes part. It runs
itself every task of its own that no worker has started yet, and waits only
for tasks a worker is already running. A worker waiting in a nested
``gather`` therefore never waits for a place in the pool it occupies.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

__all__ = ["DEFAULT_QUERY_WORKERS", "QueryExecutor"]

T = TypeVar("T")

#: Worker threads of a store's executor unless said otherwise. Measured with the
#: performance dashboard on 2 cores: DuckDB parallelises each statement itself, so
#: more concurrent statements than this only queue inside the engine.
DEFAULT_QUERY_WORKERS = 4


class _Task(Generic[T]):
    """One call, run exactly once: by whichever thread claims it first."""

    __slots__ = ("_call", "_claim", "done", "error", "value")

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._claim = threading.Lock()
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None

    def run_if_unclaimed(self) -> None:
        if not self._claim.acquire(blocking=False):
            return
        try:
            self.value = self._call()
        except BaseException as exc:  # handed to the gathering thread, which raises it
            self.error = exc
        finally:
            self.done.set()


class QueryExecutor:
    """A fixed number of worker threads, started on first use, that run query tasks.

    ``workers`` = 0 runs every task in the calling thread, one after another.
    Thread-safe; :meth:`close` stops the workers (tasks already queued still run).
    """

    def __init__(self, workers: int = DEFAULT_QUERY_WORKERS, *, name: str = "queries") -> None:
        if workers < 0:
            raise ValueError(f"query workers must be 0 or more, got {workers}")
        self.workers = workers
        self._name = name
        self._queue: queue.SimpleQueue[_Task[object] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def gather(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run ``calls`` concurrently and answer their results in order.

        The calling thread runs the first call, and any other no worker has
        started by the time it gets to it. If calls raise, every call still
        finishes, then the first error (in order) is raised.
        """
        tasks = [_Task(call) for call in calls]
        if self.workers and len(tasks) > 1:
            self._hand_out(tasks[1:])
        for task in tasks:
            task.run_if_unclaimed()
        for task in tasks:
            task.done.wait()
        for task in tasks:
            if task.error is not None:
                raise task.error
        return [cast(T, task.value) for task in tasks]

    def _hand_out(self, tasks: Sequence[_Task[T]]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the query executor is closed")
            # Workers start as work first needs them; a store that is only written to
            # never starts any.
            for _ in range(min(len(tasks), self.workers - len(self._threads))):
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{len(self._threads)}",
                    # Not joined at interpreter exit: a store left open must not hang it.
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            for task in tasks:
                self._queue.put(task)  # type: ignore[arg-type]  # results are read by gather

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            task.run_if_unclaimed()

    def close(self) -> None:
        """Stop the workers once the queued tasks are done; later ``gather`` calls fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
