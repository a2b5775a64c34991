"""RayCollector: an iteration's collection jobs on N Ray actors; the learner stays in the driver.

Each actor (``RolloutWorker``) builds its own ``RolloutRunner`` (environments of the family) once, and
receives the policy weights once per iteration: the driver puts the numpy agent into Ray's object store per
``collect`` call and every job carries (version, reference); an actor fetches the weights when the version
changes. Jobs go to whichever actor is free (at most ``jobs_in_flight_per_worker`` queued on each); since a
job's data depend only on its seed, its task and the weights (``pearl_robot.pearl.collector``), the
assignment does not change the data, and neither does the number of workers.

Faults: an actor that dies (process killed, node lost) fails its queued and running jobs with a
``RayActorError``; the collector replaces that actor with a new one (``restarts`` counts them) and redoes the
failed jobs, at most ``max_job_attempts`` times each. An actor returns a job's trajectories whole, and the
trainer adds an iteration's results to its buffers only when all of them arrived, so a death mid-collection
leaves nothing half-written. An exception raised by the collection code itself (a bug, a bad config) is not
retried: it propagates.

Serialization is Ray's (pickle within the cluster): run Ray only on a network you trust, as Ray's own docs say.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pearl_robot.distributed import connect, require_ray
from pearl_robot.errors import PearlRobotError
from pearl_robot.pearl.collector import CollectJob, Collector, JobResult, RolloutRunner
from pearl_robot.pearl.config import PEARLConfig
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.tasks.base import TaskFamily


class RolloutWorker:
    """The body of one Ray actor: a runner with its own environments, and the latest policy weights."""

    def __init__(self, cfg_data: dict[str, Any], family: TaskFamily) -> None:
        from pearl_robot.pearl.config import config_from_dict

        self.runner = RolloutRunner.from_config(config_from_dict(cfg_data, "<worker>"), family)
        self.agent: NumpyAgent | None = None
        self.version = -1

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname()}

    def run(self, job: CollectJob, version: int, weights: list[Any]) -> JobResult:
        """``weights``: ``[ObjectRef]`` of the numpy agent (in a list, so Ray passes the reference and the
        weights are fetched only when ``version`` changes)."""
        if version != self.version:
            import ray

            self.agent = ray.get(weights[0])
            self.version = version
        return self.runner.run(job, self.agent)


@dataclass
class CollectionRound:
    """One ``collect`` call in progress: the jobs, their results so far and the calls in flight."""

    jobs: list[CollectJob]
    version: int
    weights: list[Any]  # [ObjectRef of the numpy agent]
    queue: deque[int]  # job indices not yet submitted (or to redo)
    attempts: list[int]
    results: list[JobResult | None]
    pending: dict[Any, tuple[int, int, int]] = field(default_factory=dict)  # ref -> (job, slot, generation)

    def refs(self) -> list[Any]:
        return list(self.pending)

    @property
    def done(self) -> bool:
        return not self.queue and not self.pending


class RayCollector(Collector):
    """Collection on ``num_workers`` Ray actors of ``num_cpus_per_worker`` CPUs each.

    Connects to Ray if this process is not connected yet (``address``, or a local instance), and disconnects
    on ``close`` if it did."""

    def __init__(
        self,
        cfg: PEARLConfig,
        family: TaskFamily,
        num_workers: int,
        *,
        address: str | None = None,
        num_cpus_per_worker: float = 1.0,
        max_job_attempts: int = 3,
        jobs_in_flight_per_worker: int = 2,
        start_timeout_s: float = 300.0,
    ) -> None:
        if num_workers < 1:
            raise PearlRobotError(f"a RayCollector needs at least one worker, got {num_workers}")
        self.ray = require_ray()
        self.num_workers = int(num_workers)
        self.max_job_attempts = int(max_job_attempts)
        self.jobs_in_flight_per_worker = int(jobs_in_flight_per_worker)
        local_cpus = max(os.cpu_count() or 1, int(num_workers * num_cpus_per_worker + 0.999))
        self._owns_ray = connect(address, num_cpus=local_cpus)
        self._exceptions = self._worker_loss_exceptions()
        self._actor = self.ray.remote(num_cpus=num_cpus_per_worker, max_restarts=0, max_task_retries=0)(RolloutWorker)
        self._cfg_data, self._family = cfg.to_dict(), family
        self.workers: list[Any] = []
        self.generation = [0] * self.num_workers
        self.restarts = 0  # actors replaced after dying
        self._version = 0
        self._closed = False
        try:
            self.workers = [self._start() for _ in range(self.num_workers)]
            self.worker_info = self._await_started(start_timeout_s)
        except BaseException:
            self.close()
            raise

    # ---- workers -----------------------------------------------------------------------------------------
    def _worker_loss_exceptions(self) -> tuple[type[BaseException], ...]:
        e = self.ray.exceptions
        names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError")
        return tuple(getattr(e, n) for n in names if hasattr(e, n))

    def _start(self) -> Any:
        return self._actor.remote(self._cfg_data, self._family)

    def _await_started(self, timeout_s: float) -> list[dict[str, Any]]:
        ray = self.ray
        try:
            return ray.get([w.info.remote() for w in self.workers], timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            cpus = ray.cluster_resources().get("CPU", 0)
            raise PearlRobotError(
                f"{self.num_workers} rollout workers did not start within {timeout_s:.0f} s (the Ray cluster has "
                f"{cpus:g} CPUs; see `ray status`)"
            ) from None
        except self._exceptions as exc:
            raise PearlRobotError(f"a rollout worker failed to start: {exc}") from None

    def _replace(self, slot: int, generation: int) -> None:
        """Replace the actor in ``slot`` if it is still the one of ``generation`` (one death, one restart)."""
        if self.generation[slot] != generation:
            return
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(self.workers[slot], no_restart=True)
        self.workers[slot] = self._start()
        self.generation[slot] += 1
        self.restarts += 1

    # ---- collection --------------------------------------------------------------------------------------
    def submit(self, jobs: Sequence[CollectJob], agent: NumpyAgent) -> CollectionRound:
        """Start running ``jobs`` with ``agent``'s weights (sent to the workers once); ``gather`` waits."""
        if self._closed:
            raise PearlRobotError("this RayCollector is closed")
        self._version += 1
        n = len(jobs)
        rnd = CollectionRound(list(jobs), self._version, [self.ray.put(agent)], deque(range(n)), [0] * n, [None] * n)
        self._fill(rnd)
        return rnd

    def _fill(self, rnd: CollectionRound) -> None:
        busy = [0] * self.num_workers
        for _, slot, _ in rnd.pending.values():
            busy[slot] += 1
        while rnd.queue:
            slot = min(range(self.num_workers), key=busy.__getitem__)
            if busy[slot] >= self.jobs_in_flight_per_worker:
                return
            index = rnd.queue.popleft()
            ref = self.workers[slot].run.remote(rnd.jobs[index], rnd.version, rnd.weights)
            rnd.pending[ref] = (index, slot, self.generation[slot])
            busy[slot] += 1

    def gather(self, rnd: CollectionRound) -> list[JobResult]:
        """Wait for every job of ``rnd``; jobs of a worker that died are redone on its replacement."""
        ray = self.ray
        while not rnd.done:
            ready, _ = ray.wait(rnd.refs(), num_returns=1)
            for ref in ready:
                index, slot, generation = rnd.pending.pop(ref)
                try:
                    rnd.results[index] = ray.get(ref)
                except self._exceptions as exc:
                    rnd.attempts[index] += 1
                    if rnd.attempts[index] >= self.max_job_attempts:
                        raise PearlRobotError(
                            f"collection for task {rnd.jobs[index].task} failed {rnd.attempts[index]} times, its "
                            f"worker dying each time; last: {type(exc).__name__}: {exc}"
                        ) from None
                    self._replace(slot, generation)
                    rnd.queue.appendleft(index)
            self._fill(rnd)
        return list(rnd.results)  # type: ignore[arg-type]

    def collect(self, jobs: Sequence[CollectJob], agent: NumpyAgent) -> list[JobResult]:
        return self.gather(self.submit(jobs, agent))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self.workers:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(worker, no_restart=True)
        self.workers = []
        if self._owns_ray:
            self.ray.shutdown()
