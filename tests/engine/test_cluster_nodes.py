"""Ray nodes coming and going (ray.cluster_utils.Cluster: several Ray nodes on this
machine, one CPU each standing in for a GPU): a node that joins gets a painter; a node that
goes away mid-job fails its job as a crash, the job is painted again on the node that is
left, and the lost painter waits for a place. Its own Ray cluster, so its own module, and
it runs before test_ray_cluster.py (the file names' order): after another Ray session has
ended in this process, its first actor is dropped before it starts (seen with Ray 2.60; a
bot connects to Ray once, so only tests meet this)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.messages import CRASH_NOTE
from bot.scheduler import Scheduler
from bot.store import Store
from engine.worker.cluster import RayCluster
from tests.bot.test_pool import tiny_job, until
from tests.engine.test_ray_cluster import Watcher, one_ray_cluster_at_a_time

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def nodes() -> Iterator[object]:
    """A head node with one CPU, this process connected to it; token authentication on."""
    with one_ray_cluster_at_a_time(), pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        patch.delenv("RAY_AUTH_MODE", raising=False)
        cluster = cluster_utils.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        try:
            ray.init(address=cluster.address, log_to_driver=False)
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()


async def test_a_node_that_joins_paints_and_one_that_leaves_loses_nothing(
    nodes: object, tmp_path: Path
) -> None:
    cluster = nodes
    store = await Store.open(tmp_path / "jobs.sqlite3")
    pool = RayCluster(
        None, device="cpu", threads=1, progress_interval=0.1, preload=("tiny", "tiny"),
        resource="CPU", watch_interval=0.3, start_timeout=90,
    )  # fmt: skip
    reporter = Watcher()
    scheduler = Scheduler(store, pool, reporter, outputs=tmp_path / "out")
    try:
        await scheduler.start()
        await until(lambda: scheduler.worker_ready, timeout=90)
        assert len(pool.workers) == 1
        joined = cluster.add_node(num_cpus=1)  # type: ignore[attr-defined]
        await until(lambda: len(pool.workers) == 2 and all(h.alive for h in pool.health()), 90)
        first, second = pool.workers  # the second's actor is on the node that joined

        held = await store.add(tiny_job(owner=1, iterations=2000))  # keeps the head's busy
        scheduler.wake()
        await until(lambda: first.health().job_id == str(held.id))
        victim = await store.add(tiny_job(owner=2, iterations=2000))
        scheduler.wake()
        await until(lambda: victim.id in reporter.progressed)
        assert second.health().job_id == str(victim.id)

        cluster.remove_node(joined)  # type: ignore[attr-defined]  # the GPU machine goes away
        await until(lambda: reporter.requeued_jobs, timeout=30)
        assert reporter.requeued_jobs[0].id == victim.id
        assert reporter.requeued_jobs[0].note_lines == [CRASH_NOTE]
        assert not second.health().alive and second.health().restarts == 1  # waits for a place
        await scheduler.cancel(held.id)
        await until(lambda: first.health().job_id == str(victim.id), timeout=30)
        await scheduler.cancel(victim.id)
        statuses = {(await reporter.next_delivery()).status for _ in range(2)}
        assert statuses == {"cancelled"}
    finally:
        await scheduler.stop(timeout=5)
        await store.close()
