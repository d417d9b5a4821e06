"""The workers: what paints, and how jobs reach it.

- jobs.py: the plain data that travels — Job, the events, Health — and `Worker`, what every
  kind of worker offers;
- painter.py: what runs on a device — models kept resident, a job painted as events;
- process.py: a local worker process per device and its asyncio handle (`WorkerHandle`);
- pool.py: several workers behind the one interface the bot's scheduler talks to: one line
  of jobs, each to whichever worker is free (`local_pool`: a process per device);
- cluster.py: the Ray backend, a painter actor per GPU of a Ray cluster (`RayCluster`, a
  pool); Ray is imported only when a cluster starts.

Nothing here imports torch at the top: the bot imports this package without paying for it.
"""

from engine.worker.jobs import (
    TERMINAL,
    Cancelled,
    Done,
    Event,
    Failed,
    FailureKind,
    Health,
    Job,
    Painted,
    Progress,
    Started,
    Worker,
    WorkerError,
)
from engine.worker.painter import is_device_failure, is_out_of_memory, oom_message, suggest_size
from engine.worker.process import WorkerHandle, describe_exit

__all__ = [
    "TERMINAL",
    "Cancelled",
    "Done",
    "Event",
    "Failed",
    "FailureKind",
    "Health",
    "Job",
    "Painted",
    "Progress",
    "Started",
    "Worker",
    "WorkerError",
    "WorkerHandle",
    "describe_exit",
    "is_device_failure",
    "is_out_of_memory",
    "oom_message",
    "suggest_size",
]
