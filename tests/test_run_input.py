"""Bad input to the run (`python -m evolve ...`), checked in-process (the same code path as the command,
without the start-up): one line on stderr quoting the bad value, exit 2, no traceback, no Ray started,
nothing created or changed on disk."""

from __future__ import annotations

import json

import pytest
from run_helpers import refused


@pytest.fixture(scope="module")
def smoke_run_dir(tmp_path_factory):
    """A run directory created as the run creates it (run.json and the seed commit), with no training."""
    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args

    run_dir = tmp_path_factory.mktemp("runs") / "smoke-run"
    args = build_parser().parse_args(["--population", "2", "--profile", "smoke", "--run-dir", str(run_dir)])
    open_run_dir(settings_from_args(args))
    return run_dir


@pytest.mark.parametrize(
    "args, message",
    [
        (["--population", "1"], "--population must be at least 2, got 1"),
        (["--generations", "0"], "--generations must be at least 1, got 0"),
        (["--budget", "0"], "must be positive, got '0'"),
        (["--budget", "-3"], "must be positive, got '-3'"),
        (["--profile", "tpu"], "invalid choice: 'tpu'"),
        (["--strategy", "hill-climb"], "invalid choice: 'hill-climb'"),
        (["--mutators", "genetic"], "bad mode 'genetic'"),
        (["--noise-repeats", "1"], "--noise-repeats must be at least 2, got 1"),
        (["--seed-genome", "/no/such/train.py"], "genome '/no/such/train.py' does not exist"),
        (["--seed-genome", "/"], "genome '/' is not a file"),
        (["--population", "two"], "invalid int value: 'two'"),
        (["--max-hours", "0"], "--max-hours must be positive, got 0.0"),
        (["--address", "auto", "--dashboard"], "--dashboard starts one with the local Ray"),
        (["--price", "3"], "bad --price '3': expected IN/OUT"),
        (["--llm-timeout", "soon"], "bad --llm-timeout 'soon'"),
        (["--llm-concurrency", "0"], "bad --llm-concurrency 0: must be >= 1"),
        (["--max-tokens", "0"], "bad --max-tokens 0: must be >= 1"),
        (["--model", "claude-mythos-5-2", "--max-llm-cost", "5"], "no price known for model 'claude-mythos-5-2'"),
        (["--repeat-share", "0.25"], "--repeat-share 0.25 sets repeats, which a paired run does not make"),
        (["--no-paired", "--repeat-share", "11"], "--repeat-share must be between 0 and 10, got 11.0"),
    ],
)
def test_bad_run_flags_are_one_line_and_exit_2(args, message, tmp_path, capsys):
    refused([*args, "--run-dir", str(tmp_path / "never")], message, capsys)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--populaton", "4"], "unknown option '--populaton' (did you mean --population?)"),
        (["--population", "4", "--generatons=3"], "unknown option '--generatons' (did you mean --generations?)"),
        (["--frobnicate", "4"], "unknown option '--frobnicate'"),
    ],
)
def test_a_misspelt_run_option_is_named_not_taken_for_a_command(args, message, capsys):
    err = refused(args, message, capsys)
    assert "invalid choice" not in err


def test_bad_seed_genomes_are_one_line_and_exit_2(tmp_path, capsys):
    binary, broken, foreign = tmp_path / "binary.py", tmp_path / "broken.py", tmp_path / "foreign.py"
    binary.write_bytes(b"\xff\xfe\x00 not utf-8")
    broken.write_text("import harness\ndef train(:\n")
    foreign.write_text("print('hello')\n")
    for path, message in (
        (binary, "is not UTF-8 text"),
        (broken, "is not valid Python: syntax error at line 2"),
        (foreign, "is not a valid genome: does not `import harness`"),
    ):
        refused(["--seed-genome", str(path), "--run-dir", str(tmp_path / "never")], message, capsys)
    assert not (tmp_path / "never").exists()


def test_a_run_directory_of_another_profile_or_population_is_refused(smoke_run_dir, capsys):
    for args, message in (
        (["--profile", "cpu"], "belongs to profile 'smoke', not 'cpu'"),
        (["--population", "3"], "has --population 2; resume it with the same value"),
        (["--budget", "9"], "would make its scores incomparable"),
        (["--strategy", "greedy"], "runs --strategy evolve; resume it with the same value"),
    ):
        refused([*args, "--run-dir", str(smoke_run_dir)], message, capsys)


def test_a_damaged_run_json_is_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{not json")
    assert "cannot be resumed" in refused(["--run-dir", str(run_dir)], "is damaged", capsys)
    assert (run_dir / "run.json").read_text() == "{not json"  # nothing recorded is touched


def test_the_strategy_is_recorded_in_run_json(tmp_path):
    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args

    run_dir = tmp_path / "run"
    args = ["--population", "2", "--profile", "smoke", "--strategy", "parallel-greedy", "--run-dir", str(run_dir)]
    open_run_dir(settings_from_args(build_parser().parse_args(args)))
    assert json.loads((run_dir / "run.json").read_text())["strategy"] == "parallel-greedy"


def test_the_seed_genome_given_is_the_runs_seed_as_it_is(tmp_path):
    from pathlib import Path

    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args
    from population import Population

    genome, run_dir = Path(__file__).parent / "genomes" / "autoresearch_cpu.py", tmp_path / "run"
    args = ["--profile", "smoke", "--seed-genome", str(genome), "--run-dir", str(run_dir)]
    open_run_dir(settings_from_args(build_parser().parse_args(args)))
    with Population.read(run_dir) as pop:
        assert pop.seed().source == genome.read_text()


def test_run_json_records_the_total_generations_and_a_resume_updates_it(tmp_path):
    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args

    run_dir = tmp_path / "run"
    for generations in ("2", "5"):
        args = build_parser().parse_args(
            ["--profile", "smoke", "--generations", generations, "--run-dir", str(run_dir)]
        )
        open_run_dir(settings_from_args(args))
        assert json.loads((run_dir / "run.json").read_text())["generations"] == int(generations)


def test_run_json_records_which_clock_budgets_count(smoke_run_dir):
    import json

    assert json.loads((smoke_run_dir / "run.json").read_text())["clock"] == "cpu"  # CPU-seconds over threads


def test_run_json_records_every_setting_as_resolved(tmp_path):
    import dataclasses
    import hashlib

    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args
    from evolve.settings import Settings

    run_dir = tmp_path / "run"
    args = [
        "--profile",
        "smoke",
        "--run-dir",
        str(run_dir),
        "--max-llm-cost",
        "3",
        "--no-paired",
        "--repeat-share",
        ".25",
    ]
    settings = settings_from_args(build_parser().parse_args(args))
    open_run_dir(settings)
    run_json = json.loads((run_dir / "run.json").read_text())
    recorded = run_json["settings"]
    nested = {"profile", "population", "mutators", "seed_source", "program"}  # own keys, or by sha256
    assert set(recorded) >= {f.name for f in dataclasses.fields(Settings)} - nested
    assert recorded["max_llm_cost"] == 3 and recorded["repeat_share"] == 0.25 and not run_json["population"]["paired"]
    assert recorded["max_hours"] is None  # no limit
    assert recorded["program_sha256"] == hashlib.sha256(settings.program.encode()).hexdigest()


def test_pruning_and_its_thresholds_are_recorded_in_run_json_and_a_resume_keeps_them(tmp_path, capsys):
    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args
    from evolve.settings import PRUNING

    run_dir = tmp_path / "run"
    args = ["--population", "2", "--profile", "smoke", "--prune", "--run-dir", str(run_dir)]
    open_run_dir(settings_from_args(build_parser().parse_args(args)))
    recorded = json.loads((run_dir / "run.json").read_text())["prune"]
    assert recorded == dict(at=PRUNING.at, margin=PRUNING.margin, window=PRUNING.window)
    resumed = settings_from_args(build_parser().parse_args(["--run-dir", str(run_dir)]))
    assert resumed.prune is True
    refused(["--no-prune", "--run-dir", str(run_dir)], "runs --prune; resume it so", capsys)


def test_pairing_is_recorded_and_a_resume_keeps_it_or_refuses_the_other(tmp_path, capsys):
    from evolve.cli import build_parser
    from evolve.run import open_run_dir, settings_from_args

    def start(*args):
        open_run_dir(settings_from_args(build_parser().parse_args(["--population", "2", "--profile", "smoke", *args])))

    paired, unpaired, old = tmp_path / "paired", tmp_path / "unpaired", tmp_path / "old"
    start("--run-dir", str(paired))
    start("--no-paired", "--run-dir", str(unpaired))
    start("--no-paired", "--run-dir", str(old))
    recorded = json.loads((old / "run.json").read_text())
    del recorded["population"]["paired"]  # a run made before pairing was recorded
    (old / "run.json").write_text(json.dumps(recorded))
    resume = lambda d, *a: settings_from_args(build_parser().parse_args(["--run-dir", str(d), *a]))  # noqa: E731
    assert resume(paired).population.paired and not resume(unpaired).population.paired
    assert not resume(old).population.paired and resume(old, "--repeat-share", "0.1").repeat_share == 0.1
    refused(["--no-paired", "--run-dir", str(paired)], "runs --paired; resume it so", capsys)
    refused(["--paired", "--run-dir", str(unpaired)], "runs --no-paired; resume it so", capsys)
    refused(["--repeat-share", "0.3", "--run-dir", str(paired)], "a paired run does not make", capsys)
