"""What SageMaker does for the instances behind an endpoint, for the local stand-in: health checks
with `/ping`, replacement of an instance whose container died or stopped answering, and the
instance count (scale in to zero, wake from zero when requests wait).

An instance takes requests only while `healthy` is set; the workers of `async_worker.AsyncRunner`
wait on it, so queued requests stay queued while their instance is being replaced and run once the
replacement passes `/ping`, as on SageMaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from batch.local.container import ServingContainer

log = logging.getLogger(__name__)

PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 5.0  # generous: two shared cores under a burst answer /ping slowly, not never
UNHEALTHY_AFTER = 3  # consecutive failed pings before a live process is replaced


class Instance:
    """One instance: its container, whether it may take requests, how often it was replaced."""

    def __init__(self, index: int, container: ServingContainer) -> None:
        self.index = index
        self.container = container
        self.healthy = threading.Event()
        self.healthy.set()  # the endpoint starts its containers before it is InService
        self.running = True  # False while scaled in
        self.replacements = 0
        self.failed_pings = 0
        self.replaced_at: list[float] = []  # when each replacement passed /ping (monotonic)


class InstanceSupervisor:
    """One thread per endpoint: pings every instance, replaces the dead or unhealthy, follows the
    desired instance count."""

    def __init__(self, name: str, instances: list[Instance], backlog: Callable[[], int]) -> None:
        self.instances = instances
        self.desired = len(instances)
        self._backlog = backlog
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"{name}-supervisor", daemon=True)
        self._thread.start()

    @property
    def running_count(self) -> int:
        return sum(1 for i in self.instances if i.running and i.healthy.is_set() and i.container.alive())

    def report_unreachable(self, instance: Instance) -> None:
        """A worker found the container refusing connections: stop routing to it, check it now."""
        instance.healthy.clear()
        self._wake.set()

    def scale(self, count: int) -> None:
        """UpdateEndpointWeightsAndCapacities' DesiredInstanceCount (0 to the endpoint's instances)."""
        with self._lock:
            self.desired = max(0, min(count, len(self.instances)))
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(60)  # a replacement being started finishes (and is stopped) first

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(PING_INTERVAL_S)
            self._wake.clear()
            try:
                self._tick()
            except Exception:
                log.exception("instance supervision failed; retrying")

    def _tick(self) -> None:
        with self._lock:
            if self.desired == 0 and self._backlog() > 0:
                # On AWS: the HasBacklogWithoutCapacity alarm runs the wake-from-zero step policy.
                log.info("requests wait and no instance runs: scaling from zero to one instance")
                self.desired = 1
            desired = self.desired
        for instance in self.instances:
            if self._stop.is_set():
                return
            if instance.index >= desired:
                if instance.running:
                    instance.healthy.clear()
                    instance.running = False
                    instance.container.stop(grace_s=10)
                continue
            if not instance.running:
                self._replace(instance, "scaling out")
            elif not instance.container.alive():
                self._replace(instance, "its container exited")
            elif instance.container.ping(PING_TIMEOUT_S):
                instance.failed_pings = 0
                instance.healthy.set()
            else:
                instance.failed_pings += 1
                if instance.failed_pings >= UNHEALTHY_AFTER:
                    self._replace(instance, f"/ping failed {instance.failed_pings} times")

    def _replace(self, instance: Instance, why: str) -> None:
        instance.healthy.clear()
        log.warning("instance %d: %s; starting a replacement", instance.index, why)
        try:
            instance.container.restart()
        except Exception:
            log.exception("instance %d: the replacement did not start; trying again", instance.index)
            return
        if self._stop.is_set():  # the endpoint is being deleted: do not leave the replacement running
            instance.container.stop(grace_s=10)
            return
        instance.failed_pings = 0
        if instance.running:  # a replacement, not a scale-out
            instance.replacements += 1
            instance.replaced_at.append(time.monotonic())
        instance.running = True
        instance.healthy.set()
        log.warning("instance %d: replacement in service (%s)", instance.index, instance.container.url)
