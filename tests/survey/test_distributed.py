"""Survey mosaics on dask.distributed: a real scheduler and workers started as separate processes
(``--scheduler ADDRESS``), a LocalCluster (``--workers``), and a worker killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from mosaic_cases import assert_products_equal, beyond_runs_config, mosaic_config

from xgamma.io.zarr_maps import read_zarr
from xgamma.workflow.mosaic import RESUME_FOLDER

pytestmark = pytest.mark.slow


def _read_stores(output: Path) -> dict:
    return {name: read_zarr(output / f"{name}.zarr").compute() for name in ("maps", "images")}


class ExternalCluster:
    """``dask scheduler`` and ``dask worker`` processes (one single-threaded worker each)."""

    def __init__(self, folder: Path, n_workers: int) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.processes: dict[str, subprocess.Popen] = {}
        self._start("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", str(self.scheduler_file)])
        self._wait(lambda: self.scheduler_file.is_file(), "scheduler file")
        for k in range(n_workers):
            self._start(f"worker{k}", [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(self.scheduler_file), "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--name", f"w{k}"])
        self._wait(lambda: self.n_workers() == n_workers, f"{n_workers} workers")

    @property
    def address(self) -> str:
        import json

        return json.loads(self.scheduler_file.read_text())["address"]

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def n_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return len(client.scheduler_info()["workers"])

    def transitions(self) -> dict[str, int]:
        """Task state transitions each worker has made (0 for a worker that ran nothing)."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return client.run(lambda dask_worker: dask_worker.state.transition_counter)

    def worker_pids(self) -> list[int]:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return list(client.run(os.getpid).values())

    @staticmethod
    def _wait(condition, what: str, timeout: float = 120, every: float = 0.5) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if condition():
                    return
            except OSError:
                pass
            time.sleep(every)
        raise TimeoutError(f"waited {timeout} s for {what}")

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # the session we started: the process and its children
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def external_cluster(tmp_path_factory):
    """Shared by the tests of this module (the worker-kill test last: the nanny restarts its worker)."""
    cluster = ExternalCluster(tmp_path_factory.mktemp("cluster"), 2)
    yield cluster
    cluster.close()


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xgamma.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def _write_config(folder: Path, store: Path, chunks: int = 40) -> Path:
    path = folder / "survey.yaml"
    path.write_text(yaml.safe_dump(mosaic_config(store, chunks=chunks)))
    return path


def test_one_and_two_workers_write_the_same_products(survey_store, reference_products, external_cluster,
                                                     tmp_path):
    config = _write_config(tmp_path, survey_store)
    # One worker: a LocalCluster through --workers (quiet: no dask.distributed INFO lines).
    one = _cli(["run", str(config), "--output", str(tmp_path / "one"), "--workers", "1"], tmp_path)
    assert one.returncode == 0, one.stderr
    # None of dask.distributed's INFO messages (start, registration, connections, closing); its
    # warnings and errors still show (e.g. a heartbeat lost while the cluster closes on a busy host).
    info = ("State start", "Scheduler at", "Start Nanny", "Register worker", "Starting worker",
            "Receive client", "Remove client", "Closing Nanny", "Retire worker", "Scheduler closing")
    noise = [line for line in one.stderr.splitlines() if any(message in line for message in info)]
    assert noise == [], one.stderr
    # Two workers: separate `dask scheduler` and `dask worker` processes through --scheduler.
    two = _cli(["run", str(config), "--output", str(tmp_path / "two"), "--scheduler", external_cluster.address,
                "-q"], tmp_path)
    assert two.returncode == 0, two.stderr
    for output in ("one", "two"):
        assert_products_equal(_read_stores(tmp_path / output), reference_products)
    # Both workers took part.
    assert all(count > 0 for count in external_cluster.transitions().values())


def test_two_workers_write_chunks_no_run_reaches(survey_store, beyond_runs_products, external_cluster, tmp_path):
    """The tasks that use no run's data, joined into one (`fuse_per_chunk`), on separate scheduler and
    worker processes: the products equal those computed in memory as one chunk."""
    config = tmp_path / "survey.yaml"
    config.write_text(yaml.safe_dump(beyond_runs_config(survey_store)))
    run = _cli(["run", str(config), "--output", str(tmp_path / "out"), "--scheduler", external_cluster.address, "-q"],
               tmp_path)
    assert run.returncode == 0, run.stderr
    assert_products_equal(_read_stores(tmp_path / "out"), beyond_runs_products)


def test_verbose_shows_the_distributed_logs(survey_store, tmp_path):
    config = mosaic_config(survey_store, chunks=120)
    config["maps"]["offset_max"] = "1.0 deg"
    config.pop("exclusion"), config.pop("ring"), config.pop("significance")
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    verbose = _cli(["run", str(path), "--output", str(tmp_path / "out"), "--workers", "1", "--verbose"], tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert "Start Nanny" in verbose.stderr or "Register worker" in verbose.stderr


def test_warm_up_imports_on_every_worker_and_skips_unknown_modules(external_cluster):
    from distributed import Client

    from xgamma.cluster import warm_up

    module = "xgamma.simulate.survey"  # not imported by the tasks of the other tests

    def imported(name=module):
        return name in __import__("sys").modules

    with Client(external_cluster.address, timeout=30) as client:
        assert not any(client.run(imported).values())
        warm_up(client, ["xgamma_no_such_module", module])  # returns before the imports are done
        external_cluster._wait(lambda: all(client.run(imported).values()), f"{module} on every worker", 60)
        assert len(client.run(imported)) == 2
        # The imported objects are out of the cyclic collector's way, which collects again afterwards;
        # a warm-up that imports nothing freezes nothing (a worker's task state must stay collectable).
        collector = client.run(lambda: (__import__("gc").isenabled(), __import__("gc").get_freeze_count()))
        assert all(enabled and frozen > 10_000 for enabled, frozen in collector.values()), collector
        warm_up(client, [module])
        client.run(lambda: None)  # runs after the warm-up on each worker's event loop
        again = client.run(lambda: (__import__("gc").isenabled(), __import__("gc").get_freeze_count()))
        # (frozen objects that are freed leave the count)
        assert all(again[worker][0] and again[worker][1] <= frozen for worker, (_, frozen) in collector.items()), again
        # A worker that holds task state (a cluster shared with other work) imports but freezes nothing.
        other = "xgamma.cli.report"
        held = client.scatter([1], broadcast=True)
        warm_up(client, [other])
        external_cluster._wait(lambda: all(client.run(imported, other).values()), f"{other} on every worker", 60)
        busy = client.run(lambda: (__import__("gc").isenabled(), __import__("gc").get_freeze_count()))
        assert all(busy[worker][0] and busy[worker][1] <= frozen for worker, (_, frozen) in again.items()), busy
        del held


def test_loads_and_blocks_start_before_the_graph_and_run_once(survey_store, reference_products, external_cluster,
                                                              tmp_path, monkeypatch):
    """`start_loads` and `start_blocks` submit map making's loads and first blocks with the keys of the
    graph built later (so the scheduler reuses them: each load and block runs once) and the products
    are those of the synchronous scheduler."""
    from distributed import Client, get_task_stream

    from xgamma.makers.chunks import BLOCK_PREFIX, LOAD_PREFIX
    from xgamma.workflow import mosaic, run_analysis

    config = mosaic_config(survey_store)
    monkeypatch.setattr(mosaic, "EARLY_BLOCKS_PER_WORKER", 2)
    with Client(external_cluster.address, timeout=30) as client:
        analysis = run_analysis(config, dry_run=True)
        futures = mosaic.start_loads(analysis, client)
        cube = mosaic.stacked_cube(analysis)
        blocks = mosaic.start_blocks(cube, client)
        graph = mosaic.mosaic_datasets(analysis, cube=cube)["maps"]["counts"].data.__dask_graph__()
        assert len(futures) == 4 and {future.key for future in futures} <= set(graph)  # 30 runs, 8 per group
        assert all(len(runs) == 8 for runs in client.gather(futures)[:3])
        # 2 workers: the first 2 blocks (by group, then chunk) of each worker's groups, 0-1 and 2-3
        all_blocks = sorted((key for key in graph if BLOCK_PREFIX in str(key[0])), key=lambda key: key[1:])
        first = [[key for key in all_blocks if key[1] // 2 == share][:2] for share in (0, 1)]
        assert sorted(future.key for future in blocks) == sorted(first[0] + first[1])
        assert all(set(part) == {"maps"} for part in client.gather(blocks))  # the partial cubes
        del futures, blocks
        with get_task_stream(client) as stream:
            run_analysis(config, output=tmp_path / "out")
    loads = [str(task["key"]) for task in stream.data if LOAD_PREFIX in str(task["key"])]
    assert len(loads) == 4 and len(set(loads)) == 4  # each group loaded once
    ran = [str(task["key"]) for task in stream.data if BLOCK_PREFIX in str(task["key"])]
    assert len(ran) == len(set(ran)) == len(all_blocks)  # each block once, early ones included
    assert_products_equal(_read_stores(tmp_path / "out"), reference_products)


def _scheduler_keys(client) -> list[str]:
    return client.run_on_scheduler(lambda dask_scheduler: [str(key) for key in dask_scheduler.tasks])


def test_loads_start_while_the_other_stages_are_checked_and_go_if_a_check_fails(
        survey_store, reference_products, external_cluster, tmp_path):
    """A streamed run on a cluster submits its loads once the maps' inputs are checked
    (`prefetch_loads`): they are on the scheduler while the significance stage is checked, each runs
    once, and the products are those of the synchronous scheduler. When a later check fails, the
    loads are dropped from the scheduler and nothing is written."""
    import dataclasses

    from distributed import Client, get_task_stream

    from xgamma.exceptions import ConfigError
    from xgamma.makers.chunks import LOAD_PREFIX
    from xgamma.workflow import REFERENCE_STAGES, run_analysis

    seen = {}

    def loads_on_the_scheduler() -> bool:
        seen["keys"] = _scheduler_keys(client)
        return any(LOAD_PREFIX in key for key in seen["keys"])

    def checked_after_loads(check):
        def check_significance(analysis):
            # The submission reaches the scheduler a moment later (batched).
            ExternalCluster._wait(loads_on_the_scheduler, "the loads on the scheduler", timeout=10, every=0.05)
            check(analysis)
        return check_significance

    stages = [dataclasses.replace(stage, check=checked_after_loads(stage.check)) if stage.name == "significance"
              else stage for stage in REFERENCE_STAGES]
    with Client(external_cluster.address, timeout=30) as client:
        assert not _scheduler_keys(client)
        with get_task_stream(client) as stream:
            run_analysis(mosaic_config(survey_store), output=tmp_path / "out", stages=stages)
        loads = [str(task["key"]) for task in stream.data if LOAD_PREFIX in str(task["key"])]
        assert len(loads) == len(set(loads)) == 4  # 30 runs, 8 per group: each group loaded once
        assert set(loads) <= set(seen["keys"]), seen["keys"]  # all submitted before the check
        assert_products_equal(_read_stores(tmp_path / "out"), reference_products)

        # A region covering the whole map: the significance check fails after the loads were submitted.
        config = mosaic_config(survey_store)
        config["exclusion"] = {"regions": ["galactic; box(0, 0, 20, 20)"]}
        seen.clear()
        with pytest.raises(ConfigError, match="exclude every pixel"):
            run_analysis(config, output=tmp_path / "refused", stages=stages)
        assert any(LOAD_PREFIX in key for key in seen["keys"])
        ExternalCluster._wait(lambda: not _scheduler_keys(client), "the scheduler to drop the loads", timeout=30,
                              every=0.1)
        assert not _scheduler_keys(client)
    assert not (tmp_path / "refused").exists()  # not even created


def test_worker_killed_mid_run_gives_identical_products(survey_store, reference_products, external_cluster,
                                                        tmp_path):
    # 30-pixel chunks: 16 per store, 32 chunk writes (one task per chunk: the writes of 9 chunks
    # could all end between two looks at the folder).
    config = _write_config(tmp_path, survey_store, chunks=30)
    output = tmp_path / "out"
    result = {}

    def run() -> None:
        result["process"] = _cli(["run", str(config), "--output", str(output), "--scheduler",
                                  external_cluster.address, "-q"], tmp_path)

    # Looked up before the run: a client's connection (~0.3 s) between the first chunk and the kill left
    # time enough for the other chunks to be written (the test failed once here).
    victim = external_cluster.worker_pids()[0]
    thread = threading.Thread(target=run)
    thread.start()
    markers = output / RESUME_FOLDER / ".chunks"
    external_cluster._wait(lambda: markers.is_dir() and any(markers.rglob("*.json")), "a first chunk", 600,
                           every=0.02)
    written_before = len(list(markers.rglob("*.json")))
    os.kill(victim, signal.SIGKILL)  # a worker process of the cluster this test started
    thread.join(timeout=900)
    process = result["process"]
    assert process.returncode == 0, process.stderr
    assert written_before < 32  # the kill happened while chunks were still being written
    assert_products_equal(_read_stores(output), reference_products)
