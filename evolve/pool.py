"""The trainer worker pool on Ray: start-up, training calls, restarts and retirement of the workers.

Whether a dead worker is restarted or retired is the policy's decision (evolve.policy.Policy.slot_died);
this module only does it. A worker takes children once it has prepared the data on its node (on an
autoscaling cluster, once its node exists); the others meanwhile train.
"""

from __future__ import annotations

from collections.abc import Callable

import ray

from evolve.messages import Trained, Where, WorkerReady
from fitness.curves import PruneRule
from fitness.result import RunResult

WORKER_DIED = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)
RESTARTING = "restarting"  # started()'s answer for a worker Ray is still restarting: ask again, not a death


class StartFailed(Exception):
    """A worker could not prepare the data (our code raised in it): the run cannot train."""


class WorkerPool:
    def __init__(self, workers: list, on_ready: Callable[[dict], None] | None = None) -> None:
        self.workers = workers
        self.on_ready = on_ready  # called with each worker's prepare() reply
        self.nodes: list[WorkerReady] = []
        self.starting: dict[ray.ObjectRef, int] = {}
        self.training: dict[ray.ObjectRef, int] = {}  # in-flight train calls, by slot

    def start_all(self) -> None:
        for index in range(len(self.workers)):
            self.start(index)

    def start(self, index: int) -> None:
        """(Re)start a worker: Ray restarts a dead one (elsewhere if its node is gone); it prepares again."""
        self.starting[self.workers[index].prepare.remote()] = index

    def retire(self, index: int) -> None:
        ray.kill(self.workers[index], no_restart=True)

    def train(self, index: int, source: str, seed: int, prune: PruneRule | None = None, test: bool = False) -> None:
        self.training[self.workers[index].train.remote(source, seed, prune, test)] = index

    def waiting(self) -> list[ray.ObjectRef]:
        return [*self.training, *self.starting]

    def started(self, ref: ray.ObjectRef) -> tuple[int, str | None]:
        """(slot, None) once the worker is ready, or (slot, why) when it died while starting."""
        index = self.starting.pop(ref)
        try:
            info = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:  # Ray is restarting it (after a death already counted)
            return index, RESTARTING
        except WORKER_DIED as e:
            return index, one_line(e)
        except ray.exceptions.RayTaskError as e:
            raise StartFailed(f"trainer worker {index} could not prepare the data: {one_line(e)}") from None
        self.nodes.append(info)
        if self.on_ready is not None:
            self.on_ready(info)
        return index, None

    def trained(self, ref: ray.ObjectRef) -> tuple[int, Trained | None, str]:
        """(slot, reply, "") for a finished call, or (slot, None, why) when the worker died under it.
        An error of our code in the worker comes back as a reply with a crash result."""
        index = self.training.pop(ref)
        try:
            return index, ray.get(ref), ""
        except WORKER_DIED as e:
            return index, None, one_line(e)
        except ray.exceptions.RayTaskError as e:
            return index, Trained(RunResult(status="crash", reason=f"trainer error: {one_line(e)}"), Where()), ""

    def kill_all(self) -> None:
        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        self.training.clear()


def one_line(error: BaseException) -> str:
    """The error in one line; for an error raised inside a Ray task, the original exception."""
    cause = getattr(error, "cause", None)
    if isinstance(error, ray.exceptions.RayTaskError) and cause is not None:
        error = cause
        return " ".join(f"{type(error).__name__}: {error}".split())[:300]
    return " ".join(str(error).split())[:300]
