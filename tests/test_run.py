"""`python -m evolve --population N --generations G` as a user runs it: real processes, a real local Ray
(and a real two-node Ray cluster on loopback), real children on the smoke profile with a 1 s budget.

Faults: a trainer worker SIGKILLed mid-child (the child is re-queued and trained again); the orchestrator
SIGKILLed mid-run (the resumed run keeps every finished child and trains none twice); Ctrl-C (in-flight
evaluations are recorded as interrupted, exit 130). Each fault test starts one run; the random strategy's
run: tests/test_autoresearch_cli.py.
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
    TROUBLE,
    archive,
    assert_clean,
    evolve,
    finished_children,
    reap,
    run_env,
    start_run,
    wait_for,
)

from population.rundir import MARKER  # written last when a run is created: a reader can open the run from then on

pytestmark = [pytest.mark.timeout(1500), pytest.mark.slow]  # subprocess runs; the policy: tests/test_policy.py


# --- the run, killed, and its resume ---------------------------------------------------------------
def test_a_sigkilled_run_resumes_keeping_every_finished_child_and_adds_exactly_the_generations_asked(tmp_path):
    """The orchestrator SIGKILLed mid-run (as a crash would), then the same command with one more generation:
    nothing recorded is lost, no finished child is trained twice, the noise is measured once per run, and the
    resumed run ends with exactly the children of three generations of two."""
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    args = ["--population", "2", "--mutators", "offline", "--run-dir", str(run_dir)]
    proc = start_run(*args, "--generations", "2", *FAST, log=log)
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
    # the profile and its settings come from run.json: only what a user changes is given again
    resumed = evolve(*args, "--generations", "3", "--cpus-per-child", "1")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_clean(resumed)
    assert "resuming run" in resumed.stdout
    assert "best genome:" in resumed.stdout and "python -m evolve replay" in resumed.stdout
    assert (run_dir / ".git").is_dir() and (run_dir / "archive").is_dir() and (run_dir / "results.tsv").is_file()
    after = archive(run_dir)
    columns = ["eval_id", "genome_id", "kind", "status", "val_bpb"]
    assert after.iloc[: len(before)][columns].equals(before[columns])  # nothing recorded was lost
    assert finished_children(after) == 6  # three generations of 2, no more
    done = after[(after.kind == "child") & (after.status != "interrupted")]
    assert not done.genome_id.duplicated().any()  # no finished child trained twice
    assert set(done.generation) == {1, 2, 3}
    assert (after.kind == "noise").sum() == 2 and (after[after.kind == "noise"].status == "ok").any()
    recorded = json.loads((run_dir / "run.json").read_text())
    assert recorded["profile"]["name"] == "smoke" and recorded["profile"]["budget_seconds"] == 1.0
    assert "environment" in recorded and recorded["population"]["population_size"] == 2
    commits = subprocess.run(["git", "rev-list", "--all"], cwd=run_dir, capture_output=True, text=True)
    assert set(after.genome_id) <= set(commits.stdout.split())  # every evaluated genome is a commit


# --- a real two-node cluster ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    """Ports that default to fixed numbers: two nodes on one host need their own."""
    names = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port")
    return [f"--{name}={_free_port()}" for name in (*names, "runtime-env-agent-port", "node-manager-port")]


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
    result = evolve(
        "--address", two_node_cluster, "--population", "2", "--generations", "1", "--mutators", "offline",
        "--run-dir", str(run_dir), *FAST,
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


def _busy_worker(proc: subprocess.Popen) -> int | None:
    """A worker of this run's raylet (a child of the run's process) that is training right now."""
    processes = _processes()
    raylets = {pid for pid, ppid, args in processes if ppid == proc.pid and "raylet" in args.split()[0]}
    for pid, ppid, args in processes:
        if ppid in raylets and args.startswith("ray::TrainerWorker.train"):
            return pid
    return None


def _answered(proc: subprocess.Popen) -> int | str:
    """The run's exit status once it has answered a Ctrl-C. Not within 120 s: what its main thread was doing
    then (py-spy, where installed) and how it ended (or not) in a last 180 s."""
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        spy = shutil.which("py-spy")
        dump = subprocess.run([spy, "dump", "--pid", str(proc.pid)], capture_output=True, text=True) if spy else None
        try:
            ended = f"exit {proc.wait(180)}"
        except subprocess.TimeoutExpired:
            ended = "still running"
        return f"no answer to Ctrl-C in 120 s ({ended}); py-spy: {dump.stdout + dump.stderr if dump else 'n/a'}"


def test_a_killed_trainer_worker_has_its_child_retried_and_ctrl_c_records_what_is_in_flight_as_interrupted(tmp_path):
    """One run meets both: a trainer worker SIGKILLed mid-child (its child is re-queued, trained again and
    recorded, and the death leaves no failure behind), then Ctrl-C while children train (exit 130, each
    evaluation in flight recorded as interrupted)."""
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    # 40 generations: far more than the test waits for, so the run is still training when Ctrl-C comes (with 4,
    # pruned children once finished the run on a loaded machine before the test sent it)
    proc = start_run("--population", "2", "--generations", "40", "--mutators", "offline", "--run-dir", str(run_dir),
                     *FAST[:-2], "--cpus-per-child", "1", "--budget", "3", log=log)  # fmt: skip
    try:

        def training_a_child() -> int | None:  # once the noise is measured, a busy worker trains a child
            noise_done = (run_dir / MARKER).is_file() and (archive(run_dir).kind == "noise").sum() == 2
            return _busy_worker(proc) if noise_done else None

        victim = wait_for(training_a_child, 600, "a trainer worker training a child", proc, log)
        time.sleep(1.0)  # mid-child
        os.kill(victim, signal.SIGKILL)
        requeued = (
            wait_for(lambda: "re-queued " in log.read_text(), 600, "the child re-queued", proc, log)
            and (log.read_text().split("re-queued ")[1][:7])
        )

        def retried() -> bool:
            frame = archive(run_dir)
            return bool((frame.genome_id.str.startswith(requeued) & (frame.status != "interrupted")).any())

        wait_for(retried, 600, "the re-queued child trained and recorded", proc, log)
        time.sleep(2)  # the next evaluations are under way
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = _answered(proc)
    finally:
        reap(proc)
    text = log.read_text()
    assert code == 130, f"{code}\n{text[:3000]}\n...\n{text[-3000:]}"
    assert "died" in text and "stopped: interrupted" in text, text[-3000:]
    assert "Traceback" not in text and "Exception ignored" not in text, text  # no Ctrl-C dropped in a finalizer
    frame = archive(run_dir)
    finished = frame[frame.status != "interrupted"]
    assert not finished.status.isin(TROUBLE).any(), frame[["status", "reason"]]  # the death left no failure behind
    assert (frame.kind == "noise").sum() == 2 and finished_children(frame) >= 1
    assert (frame.status == "interrupted").any()
    assert frame.reason[frame.status == "interrupted"].str.startswith("the run was stopped (Ctrl-C)").all()


def test_a_pruned_run_stops_exactly_the_children_whose_curve_trails_their_parents(tmp_path):
    from evolve.settings import PRUNING
    from population import Population
    from population.archive import curve

    run_dir = tmp_path / "run"
    result = evolve(
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
