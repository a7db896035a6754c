"""Bad input to the run-reading commands: one line on stderr quoting the bad value, exit code 2, no traceback."""

from __future__ import annotations

import itertools
import json

import pytest
from run_helpers import evolve

from population import Population, PopulationConfig

# The session's smoke run (tests/conftest.py) is built by whichever test asks first: ~1.5 min, more on a
# loaded machine, so these tests get more than the default 300 s.
pytestmark = pytest.mark.timeout(900)

COMMANDS = (("lineage",), ("show", "seed"), ("status",), ("report",), ("replay", "seed"))


def _one_line_usage_error(proc, quoted: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("evolve: error: ") and quoted in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_missing_run_directory_is_named(command, tmp_path):
    missing = tmp_path / "no-such-run"
    _one_line_usage_error(evolve(*command, "--run-dir", str(missing)), f"{str(missing)!r} does not exist")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_directory_that_is_not_a_run_is_named(command, tmp_path):
    _one_line_usage_error(evolve(*command, "--run-dir", str(tmp_path)), f"{str(tmp_path)!r} is not an evolve run")
    assert list(tmp_path.iterdir()) == []  # nothing was created in it


def test_a_file_is_not_a_run_directory(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    _one_line_usage_error(evolve("status", "--run-dir", str(path)), f"{str(path)!r} is not a directory")


@pytest.mark.parametrize("command", ["lineage", "show", "replay"])
def test_an_unknown_genome_id_is_quoted(command, smoke_run):
    _one_line_usage_error(evolve(command, "abc0000", "--run-dir", str(smoke_run.run_dir)), "'abc0000'")
    _one_line_usage_error(evolve(command, "not-hex", "--run-dir", str(smoke_run.run_dir)), "'not-hex'")


def test_an_unknown_other_genome_for_diff_is_quoted(smoke_run):
    proc = evolve("show", "seed", "--diff", "ffff99", "--run-dir", str(smoke_run.run_dir))
    _one_line_usage_error(proc, "'ffff99'")


def test_an_ambiguous_prefix_is_named_with_its_candidates(smoke_run, tmp_path, seed_source):
    """Commit genomes to a copy of the run until two ids share a first hex digit."""
    run_dir = smoke_run.copy(tmp_path / "run")
    with Population.open(run_dir, None, PopulationConfig(population_size=4, confirm_repeats=2)) as pop:
        ids = [pop.seed().id, *(g.id for g in smoke_run.children)]
        for n in itertools.count():
            shared = {i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1}
            if shared:
                break
            ids.append(pop.add(seed_source + f"\n# variant {n}\n", [pop.seed().id], "mutate", f"variant {n}", 1)[0].id)
    prefix = shared.pop()
    proc = evolve("show", prefix, "--run-dir", str(run_dir))
    _one_line_usage_error(proc, f"genome id prefix {prefix!r} is ambiguous")


def test_a_corrupt_archive_segment_is_named(smoke_run, tmp_path):
    run_dir = smoke_run.copy(tmp_path / "run")
    segment = sorted((run_dir / "archive").glob("seg-*.parquet"))[-1]
    segment.write_bytes(b"PAR1 this is not parquet PAR1")
    for command in COMMANDS:
        _one_line_usage_error(evolve(*command, "--run-dir", str(run_dir)), f"{str(segment)!r} is unreadable")


def test_an_archive_with_a_gap_is_named(smoke_run, tmp_path):
    run_dir = smoke_run.copy(tmp_path / "run")
    sorted((run_dir / "archive").glob("seg-*.parquet"))[1].unlink()
    _one_line_usage_error(evolve("status", "--run-dir", str(run_dir)), "lost rows")


def test_a_damaged_run_json_is_named(smoke_run, tmp_path):
    run_dir = smoke_run.copy(tmp_path / "run")
    (run_dir / "run.json").write_text('{"format": 1, "profile": ')
    _one_line_usage_error(evolve("status", "--run-dir", str(run_dir)), f"{str(run_dir / 'run.json')!r} is damaged")


def test_a_run_json_with_a_foreign_profile_is_refused_by_replay(smoke_run, tmp_path):
    run_dir = smoke_run.copy(tmp_path / "run")
    record = json.loads((run_dir / "run.json").read_text())
    record["profile"]["warp_factor"] = 9
    (run_dir / "run.json").write_text(json.dumps(record))
    _one_line_usage_error(evolve("replay", "seed", "--run-dir", str(run_dir)), "warp_factor")


@pytest.mark.parametrize(
    "args, quoted",
    [
        (["lineage", "--out", "tree.jpg"], "'tree.jpg'"),
        (["replay", "seed", "--repeats", "0"], "0"),
        (["replay", "seed", "--profile", "tpu"], "'tpu'"),
    ],
)
def test_bad_options_are_one_line(args, quoted, smoke_run):
    _one_line_usage_error(evolve(*args, "--run-dir", str(smoke_run.run_dir)), quoted)
