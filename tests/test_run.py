"""`python -m evolve --population N --generations G` as a user runs it: real processes, a real local Ray
(and a real two-node Ray cluster on loopback), real children on the smoke profile with a 1 s budget.

Faults: a trainer worker SIGKILLed mid-child (the child is re-queued and the run completes); the
orchestrator SIGKILLed mid-run (the resumed run keeps every finished child and trains none twice);
Ctrl-C (in-flight evaluations are recorded as interrupted, exit 130).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from run_helpers import (
    FAST,
    TIMEOUT,
    TROUBLE,
    archive,
    assert_clean,
    evolve_run,
    finished_children,
    reap,
    run_env,
    start_run,
    wait_for,
)

from population.rundir import MARKER  # written last when a run is created: a reader can open the run from then on

pytestmark = [pytest.mark.timeout(1500), pytest.mark.slow]  # subprocess runs; the policy: tests/test_policy.py


# --- the run and its resume ------------------------------------------------------------------------
def test_run_completes_and_resume_adds_exactly_one_generation(tmp_path):
    run_dir = tmp_path / "run"
    first = evolve_run(
        "--population", "2", "--generations", "2", "--mutators", "offline", "--run-dir", str(run_dir),
        "--repeat-share", "0", *FAST,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert_clean(first)
    assert (run_dir / ".git").is_dir() and (run_dir / "archive").is_dir() and (run_dir / "results.tsv").is_file()
    before = archive(run_dir)
    assert finished_children(before) == 4
    assert (before.kind == "noise").sum() == 2 and (before[before.kind == "noise"].status == "ok").any()
    assert "best genome:" in first.stdout and "python -m evolve replay" in first.stdout
    recorded = json.loads((run_dir / "run.json").read_text())
    assert recorded["profile"]["name"] == "smoke" and recorded["profile"]["budget_seconds"] == 1.0
    assert "environment" in recorded and recorded["population"]["population_size"] == 2
    commits = subprocess.run(["git", "rev-list", "--all", "--count"], cwd=run_dir, capture_output=True, text=True)
    assert int(commits.stdout) == before.genome_id.nunique()  # every evaluated genome is a commit

    second = evolve_run(
        "--generations", "3", "--mutators", "offline", "--run-dir", str(run_dir), "--cpus-per-child", "1",
        "--repeat-share", "0",
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming run" in second.stdout
    after = archive(run_dir)
    assert finished_children(after) == 6  # exactly one more generation of 2
    assert after.iloc[: len(before)][["eval_id", "genome_id", "status"]].equals(
        before[["eval_id", "genome_id", "status"]]
    )
    children = after[after.kind == "child"]
    assert not children.genome_id.duplicated().any()  # nothing finished was trained again
    assert (after.kind == "noise").sum() == 2  # the noise level is measured once per run
    assert set(after.generation[after.kind == "child"].iloc[4:]) == {3}


# --- a real two-node cluster ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    """Ports that default to fixed numbers: two nodes on one host need their own."""
    names = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port")
    return [f"--{name}={_free_port()}" for name in (*names, "runtime-env-agent-port", "node-manager-port")]


def test_a_random_strategy_run_mutates_only_the_seed_and_takes_no_repeats(tmp_path):
    run_dir = tmp_path / "run"
    result = evolve_run(
        "--population", "2", "--generations", "2", "--mutators", "offline", "--strategy", "random",
        "--run-dir", str(run_dir), *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_clean(result)
    assert "random's pick (its best at training seed 0)" in result.stdout
    assert json.loads((run_dir / "run.json").read_text())["strategy"] == "random"
    from population import Population

    with Population.read(run_dir) as pop:
        frame, seed = pop.archive(), pop.seed().id
        parents = {pop.genome(g).parents for g in frame[frame.kind == "child"].genome_id}
    assert parents == {(seed,)} and finished_children(frame) == 4 and not (frame.kind == "repeat").any()


@pytest.fixture
def two_node_cluster(tmp_path):
    port = _free_port()
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=1"]
    # Its own Ray temp dir (short: socket paths are capped at 107 bytes), so no other ray.init() joins it.
    ray_tmp = tempfile.mkdtemp(prefix="ray2n-", dir="/tmp")
    env = {**run_env(), "RAY_TMPDIR": ray_tmp}
    head = subprocess.Popen(
        ["ray", "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--ray-client-server-port={_free_port()}", *common, *_node_ports()],
        env=env, start_new_session=True, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"

        def up(count: int) -> bool:
            status = subprocess.run(["ray", "status", f"--address={address}"], capture_output=True, text=True, env=env)
            return status.stdout.count("node_") >= count

        wait_for(lambda: up(1), 300, "the head node", head, tmp_path / "head.log")
        nodes.append(_join_worker(address, common, env, tmp_path, up))
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                pass
            reap(node)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _join_worker(address: str, common: list[str], env: dict, tmp_path, up) -> subprocess.Popen:
    """`ray start --address` for the second node. Ray gives a new raylet a fixed 30 s to register with the
    GCS (not configurable in Ray 2.60) and `ray start` exits when it misses that on a loaded machine; a node
    that failed to join is reaped and started again, as an operator would, at most three times."""
    for attempt in range(3):
        log = tmp_path / f"worker{attempt}.log"
        worker = subprocess.Popen(
            ["ray", "start", f"--address={address}", *common, *_node_ports()],
            env=env, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: up(2), 300, "the second node", worker, log)
            return worker
        except AssertionError:
            reap(worker)
            last = log.read_text()[-2000:]
    raise AssertionError(f"the second node failed to join three times; the last attempt said:\n{last}")


def test_run_on_a_two_node_cluster(tmp_path, two_node_cluster):
    run_dir = tmp_path / "run"
    result = evolve_run(
        "--address", two_node_cluster, "--population", "2", "--generations", "1", "--mutators", "offline",
        "--run-dir", str(run_dir), "--repeat-share", "0", *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    frame = archive(run_dir)
    assert finished_children(frame) == 2 and not frame.status.isin(TROUBLE).any(), frame[["status", "reason"]]
    assert frame.node.nunique() == 2  # evaluations ran on both nodes
    workers = [json.loads(line)["worker"] for line in (run_dir / "sessions.jsonl").read_text().splitlines()]
    assert len({w["node"] for w in workers}) == 2
    assert all(w["gpus"] and w["cuda_visible_devices"] == w["gpus"][0] for w in workers)  # one GPU each, as Ray says


# --- faults ---------------------------------------------------------------------------------------
def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        pid, ppid, *args = line.split(None, 2)
        rows.append((int(pid), int(ppid), " ".join(args)))
    return rows


def test_a_killed_trainer_worker_has_its_child_retried(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    proc = start_run(
        "--population", "2", "--generations", "1", "--mutators", "offline", "--run-dir", str(run_dir),
        "--repeat-share", "0", *FAST[:-2], "--cpus-per-child", "1", "--budget", "3",
        log=log,
    )  # fmt: skip
    try:

        def busy_worker() -> int | None:
            """A worker of this run's raylet (a child of the run's process) that is training right now."""
            processes = _processes()
            raylets = {pid for pid, ppid, args in processes if ppid == proc.pid and "raylet" in args.split()[0]}
            for pid, ppid, args in processes:
                if ppid in raylets and args.startswith("ray::TrainerWorker.train"):
                    return pid
            return None

        victim = wait_for(busy_worker, 600, "a trainer worker training a child", proc, log)
        time.sleep(1.0)  # mid-child
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    finally:
        reap(proc)
    text = log.read_text()
    assert "died" in text and "re-queued" in text, text[-3000:]
    requeued = text.split("re-queued ")[1][:7]
    frame = archive(run_dir)
    assert not frame.status.isin(TROUBLE).any(), frame[["status", "reason"]]  # the death left no failure behind
    assert finished_children(frame) == 2 and (frame.kind == "noise").sum() == 2
    assert frame.genome_id.str.startswith(requeued).any()  # the re-queued evaluation was recorded


def test_sigkilled_orchestrator_resumes_without_losing_a_finished_child(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    args = ["--population", "2", "--generations", "2", "--mutators", "offline", "--run-dir", str(run_dir)]
    proc = start_run(*args, "--repeat-share", "0", *FAST, log=log)
    try:
        wait_for(
            lambda: (run_dir / MARKER).is_file() and finished_children(archive(run_dir)) >= 1, 600,
            "a finished child", proc, log,
        )  # fmt: skip
        os.kill(proc.pid, signal.SIGKILL)  # the orchestrator alone, as a crash would
        proc.wait()
        time.sleep(3)  # its Ray (trainers included) goes down with it
    finally:
        reap(proc)
    before = archive(run_dir)
    assert finished_children(before) < 4  # killed mid-run
    resumed = evolve_run(*args, "--repeat-share", "0", *FAST)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = archive(run_dir)
    columns = ["eval_id", "genome_id", "kind", "status", "val_bpb"]
    assert after.iloc[: len(before)][columns].equals(before[columns])  # nothing recorded was lost
    assert finished_children(after) == 4
    done = after[(after.kind == "child") & (after.status != "interrupted")]
    assert not done.genome_id.duplicated().any()  # and no finished child trained twice


def test_ctrl_c_records_in_flight_evaluations_as_interrupted(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    proc = start_run("--population", "2", "--generations", "4", "--mutators", "offline", "--run-dir", str(run_dir),
                     *FAST[:-2], "--budget", "3", "--cpus-per-child", "1", log=log)  # fmt: skip
    try:
        wait_for(lambda: (run_dir / "sessions.jsonl").exists(), 600, "a ready trainer worker", proc, log)
        time.sleep(2)  # evaluations are under way
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = proc.wait(300)
    finally:
        reap(proc)
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert "Traceback" not in text and "stopped: interrupted" in text
    frame = archive(run_dir)
    assert (frame.status == "interrupted").any()
    assert frame.reason[frame.status == "interrupted"].str.startswith("the run was stopped (Ctrl-C)").all()


def test_a_pruned_run_stops_exactly_the_children_whose_curve_trails_their_parents(tmp_path):
    from evolve.settings import PRUNING
    from population import Population
    from population.archive import curve

    run_dir = tmp_path / "run"
    result = evolve_run(
        "--population", "2", "--generations", "3", "--mutators", "offline", "--prune", "--run-dir", str(run_dir),
        *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["prune"]["margin"] == PRUNING.margin
    with Population.read(run_dir) as pop:
        rows = pop.archive().sort_values("eval_id").to_dict("records")
    assert all(len(curve(r)) >= 10 for r in rows if r["status"] == "ok")  # every real training keeps its curve
    first = {}
    for row in rows:
        if row["status"] == "ok" and row["seed"] == 0:
            first.setdefault(row["genome_id"], curve(row))
    judged = [r for r in rows if r["kind"] == "child" and r["parents"].split(",")[0] in first]
    assert judged
    for row in judged:
        verdict = dataclasses.replace(PRUNING, parent=first[row["parents"].split(",")[0]]).verdict(curve(row))
        assert (row["status"] == "pruned") == bool(verdict), (row["status"], verdict, row["reason"])
