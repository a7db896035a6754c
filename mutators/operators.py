"""Mutators: the one object the orchestrator holds to turn parents into draft children.

It decides which operator families are on (from the mode and whether an API key exists), picks
operators, dispatches proposals and keeps the LLM spend. While the LLM API has an outage (429/529/5xx
past the retries, then a pause), an LLM proposal is answered by an offline stand-in (hyperparam on
the first parent) whose changes say so, so the caller's slots keep training. Safe to share between
threads. The key and base URL are read from the environment once, here; the caller may then drop
ANTHROPIC_* from its environment. A pickled copy holds no key.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Sequence

from mutators import llm_ops
from mutators.accept import IsDuplicate
from mutators.config import MutatorConfig, MutatorConfigError
from mutators.context import Context
from mutators.llm_client import LLMClient
from mutators.merge import merge, transplant
from mutators.messages import LLM_OPERATORS, LLMUsage, ParentInfo, Proposal, failed, one_line
from mutators.offline import hyperparam

log = logging.getLogger(__name__)

PROPOSE_OPERATORS = ("mutate", "crossover", "hyperparam", "merge", "transplant")
TWO_PARENT_OPERATORS = ("crossover", "merge", "transplant")  # a transplant's parents: [best, donor]


class Mutators:
    def __init__(
        self,
        config: MutatorConfig,
        *,
        api_key: str | None = None,
        api_key_from_env: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises MutatorConfigError if the mode asks for the LLM explicitly and there is no key."""
        self.config = config
        key = api_key or (os.environ.get("ANTHROPIC_API_KEY") if api_key_from_env else None)
        self._weights = config.family_weights()
        if "llm" in self._weights and not key:
            if config.mode != "auto":
                raise MutatorConfigError(f"mode {config.mode!r} needs the LLM but ANTHROPIC_API_KEY is not set")
            log.info("no ANTHROPIC_API_KEY set: using the offline operators only (hyperparam, merge)")
            self._weights = {"offline": 1.0}
        base_url = config.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._llm = LLMClient(config, key, base_url, sleep, clock) if "llm" in self._weights else None

    def __repr__(self) -> str:
        families = ",".join(sorted(self._weights))
        return f"Mutators(mode={self.config.mode!r}, families={families!r}, model={self.config.model!r})"

    @property
    def llm_available(self) -> bool:
        return self._llm is not None

    @property
    def spent_usd(self) -> float:
        return self._llm.total.cost_usd if self._llm else 0.0

    @property
    def usage(self) -> LLMUsage | None:
        """Tokens and dollars over every LLM request so far; None when the LLM is off."""
        return self._llm.total if self._llm else None

    def redact(self, text: str) -> str:
        """`text` with the API key, should it appear, replaced by [key]."""
        return self._llm.redact(text) if self._llm else text

    def budget_left(self) -> bool:
        return self._llm is None or self._llm.budget_left()

    @property
    def llm_paused(self) -> bool:
        """True while the LLM API is paused after an outage (LLM proposals get offline stand-ins)."""
        return self._llm is not None and self._llm.paused_for() > 0

    def choose_operator(self, rng: random.Random, n_parents_available: int) -> str:
        """Pick a family by the mode's weights (offline once the budget is spent), then an operator."""
        families = list(self._weights)
        family = rng.choices(families, weights=[self._weights[f] for f in families])[0]
        if family == "llm" and not self.budget_left():
            family = "offline"
        two = n_parents_available >= 2 and rng.random() < self.config.crossover_rate
        if family == "llm":
            return "crossover" if two else "mutate"
        return "merge" if two else "hyperparam"

    def wants_transplant(self, rng: random.Random) -> bool:
        """Whether this proposal is a transplant: `transplant_rate` of the offline family's share (the rate
        was chosen in the simulator, which has no LLM); no draw from `rng` when that is 0."""
        rate = self.config.transplant_rate * self._weights.get("offline", 0.0)
        return rate > 0 and rng.random() < rate

    def propose(
        self,
        op: str,
        parents: Sequence[ParentInfo],
        ancestor_source: str | None,
        context: Context,
        rng: random.Random,
        is_duplicate: IsDuplicate | None = None,
    ) -> Proposal:
        """A child of `parents` by operator `op`; failures come back as a Proposal status."""
        if op not in PROPOSE_OPERATORS:
            raise ValueError(f"unknown operator {op!r}; expected one of {', '.join(PROPOSE_OPERATORS)}")
        needed = 2 if op in TWO_PARENT_OPERATORS else 1
        if len(parents) < needed:
            raise ValueError(f"operator {op!r} needs {needed} parent(s), got {len(parents)}")
        if op in LLM_OPERATORS and self._llm is None:
            return failed("unavailable", op, "the LLM operators are off (offline mode or no API key)")
        proposal = self._dispatch(op, parents, ancestor_source, context, rng, is_duplicate)
        if proposal.status != "outage":
            return proposal
        stand_in = hyperparam(parents[0], context.profile, rng, is_duplicate)
        note = one_line(f"offline stand-in for {proposal.operator}: LLM outage ({proposal.reason})", 240)
        if stand_in.ok:
            draft = dataclasses.replace(stand_in.draft, changes=(*stand_in.draft.changes, note))
            return dataclasses.replace(stand_in, draft=draft, usage=proposal.usage, transcript=proposal.transcript)
        reason = one_line(f"{note}; {stand_in.reason}")
        return dataclasses.replace(stand_in, reason=reason, usage=proposal.usage, transcript=proposal.transcript)

    def _dispatch(self, op, parents, ancestor_source, context, rng, is_duplicate) -> Proposal:
        attempts = self.config.max_attempts
        if op == "mutate":
            return llm_ops.mutate(self._llm, parents[0], context, attempts, is_duplicate)
        if op == "crossover":
            return llm_ops.crossover(
                self._llm, parents[0], parents[1], ancestor_source, context, attempts, is_duplicate
            )
        if op == "hyperparam":
            return hyperparam(parents[0], context.profile, rng, is_duplicate)
        if op == "transplant":
            return transplant(parents[0], parents[1], ancestor_source, is_duplicate, context.profile)
        return self._merge(parents[0], parents[1], ancestor_source, context, is_duplicate)

    def _merge(self, a, b, ancestor, context, is_duplicate) -> Proposal:
        proposal = merge(a, b, ancestor, is_duplicate, context.profile)
        if proposal.status != "conflict" or self._llm is None or not self._llm.budget_left() or self.llm_paused:
            return proposal
        log.info("merge of %s and %s conflicted; asking the LLM crossover instead", a.id, b.id)
        return llm_ops.crossover(self._llm, a, b, ancestor, context, self.config.max_attempts, is_duplicate)

    def repair(
        self, child: ParentInfo, error_tail: str, context: Context, is_duplicate: IsDuplicate | None = None
    ) -> Proposal:
        """Ask the LLM to fix `child`, which crashed with `error_tail`; the draft's parent is `child`."""
        if self._llm is None:
            return failed("unavailable", "repair", "repair needs the LLM (offline mode or no API key)")
        return llm_ops.repair(self._llm, child, error_tail, context, self.config.max_attempts, is_duplicate)
