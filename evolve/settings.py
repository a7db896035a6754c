"""The run's settings: each package's config (profile, population, mutators) and the run's own limits,
resolved from the command line by evolve.run and recorded whole in the run directory's run.json; and the
run directory's two session records (run.json's environment, sessions.jsonl)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fitness.curves import PruneRule
from fitness.profile import Profile
from mutators import MutatorConfig
from population import PopulationConfig
from population.rundir import write_atomic
from trainer.spawn import clock_name

REPO = Path(__file__).resolve().parents[1]
SEED_GENOME = REPO / "trainer" / "seeds" / "train.py"
PROGRAM = REPO / "experiments" / "program.md"
RUN_JSON = "run.json"
SESSIONS = "sessions.jsonl"
DEFAULT_POPULATION = 16
DEFAULT_REPEAT_SHARE = 0.5  # --no-paired: repeat evaluations per child started, at most
DEFAULT_PRUNE = True  # the simulator and real curves support it: docs/benchmarks.md, "How to read the pruning figures"
PRUNING = PruneRule(())  # the rule --prune stops children by (its thresholds: fitness.curves.PruneRule)
CACHE_ENV = ("EVOLVE_CACHE", "EVOLVE_CLIMBMIX_URL")  # passed on to trainer workers when set here


@dataclass(frozen=True)
class Settings:
    run_dir: Path
    profile: Profile
    population: PopulationConfig
    generations: int
    mutators: MutatorConfig
    seed_path: str
    seed_source: str
    program: str
    noise_repeats: int
    address: str | None
    local_gpus: int | None
    cpus_per_child: int | None
    workers: int | None
    lookahead: int | None
    max_hours: float
    max_llm_cost: float
    repeat_share: float
    seed: int
    strategy: str = "evolve"  # evolve.strategies.STRATEGIES
    prune: bool = DEFAULT_PRUNE  # stop children whose loss curve trails their parent's (fitness.curves.PruneRule)
    dashboard: bool = False  # Ray's dashboard with the local Ray

    @property
    def device(self) -> str:
        return "cuda" if self.profile.name == "h100" else "cpu"

    def record(self) -> dict:
        """run.json: fixed when the run is created (the environment is added by the first worker)."""
        return {
            "format": 1,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "profile": self.profile.to_dict(),
            "population": dataclasses.asdict(self.population),
            "generations": self.generations,  # a total; a resumed run updates it to the one it was given
            "mutators": self.mutators.mode,
            "model": self.mutators.model,
            "llm": self.mutators.resolved(),
            "seed_genome": self.seed_path,
            "noise_repeats": self.noise_repeats,
            "device": self.device,
            "strategy": self.strategy,
            "prune": {k: v for k, v in PRUNING.to_dict().items() if k != "parent"} if self.prune else None,
            "clock": clock_name(self.device),  # what a child's budget counts: CPU-seconds over its threads, or wall
            "settings": self.resolved(),
        }

    def resolved(self) -> dict:
        """Every setting as resolved (JSON: no limit is null); the program and seed source by their sha256."""
        record = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("seed_source", "program"):
                record[field.name + "_sha256"] = hashlib.sha256(value.encode()).hexdigest()
            elif field.name in ("profile", "population", "mutators"):
                continue  # recorded whole under their own keys
            elif isinstance(value, float) and math.isinf(value):
                record[field.name] = None
            else:
                record[field.name] = str(value) if isinstance(value, Path) else value
        return record


def record_worker(run_dir: Path, session: str, info: dict, argv: list[str]) -> None:
    """A worker is ready: add it to sessions.jsonl; the first worker's environment completes run.json."""
    path = run_dir / RUN_JSON
    recorded = json.loads(path.read_text())
    if "environment" not in recorded:
        recorded["environment"] = info["environment"]
        write_atomic(path, json.dumps(recorded, indent=1) + "\n")
    line = {"session": session, "argv": argv, "worker": info}
    with open(run_dir / SESSIONS, "a") as f:
        f.write(json.dumps(line) + "\n")
