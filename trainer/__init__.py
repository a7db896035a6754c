"""trainer: run one genome. Sandbox directory, scrubbed environment, subprocess, hard kill, then score.

`run(genome_source, profile, ...) -> RunResult` is the whole interface; it is what a Ray worker calls.
"""

from trainer.run import run, scorer_process
from trainer.scorer_client import ScorerProcess
from trainer.spawn import Standby, TrainerConfig

__all__ = ["Standby", "TrainerConfig", "run", "scorer_process", "ScorerProcess"]
