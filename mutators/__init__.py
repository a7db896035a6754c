"""mutators: turn parents into a draft child genome (new train.py source + a one-line idea).

Mutators never train anything and own no run state: the caller (evolve) passes plain data in and
gets a `Proposal` back; it dedupes against the population and commits. Failures are statuses.

Operators
    mutate      LLM: one focused idea for one parent, as SEARCH/REPLACE edits (full file as fallback)
    crossover   LLM: combine two parents' lines of ideas, shown as diffs against their ancestor
    repair      LLM: fix a child that crashed early, keeping its idea ("repair: ..." description)
    hyperparam  offline: perturb one or two UPPER_CASE numeric knobs, editing just the literal
    merge       offline: 3-way merge of two parents against their ancestor, knobs by name (the
                fitter parent's value when both changed one), the rest by git merge-file;
                a conflict goes to the LLM crossover when the LLM is on
    transplant  offline: the best plus a donor's knob changes since their common ancestor (parents
                [best, donor]; the child's one parent is the best); `wants_transplant(rng)` says when

Use
    config = MutatorConfig.from_cli(mode="auto", max_cost_usd="5")      # MutatorConfigError on bad input
    mutators = Mutators(config)  # reads ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL); 'llm' without a key raises
    # then drop ANTHROPIC_* from os.environ before starting other processes (evolve.session does)
    op = "transplant" if mutators.wants_transplant(rng) and donor else mutators.choose_operator(rng, len(pool))
    proposal = mutators.propose(op, [ParentInfo(id, source, description, val_bpb), ...],
                                ancestor_source, Context(program=..., profile=..., ...), rng, is_duplicate)
    proposal = mutators.repair(ParentInfo(child_id, child_source, description), error_tail, context)
    if proposal.ok: commit(proposal.draft)  # Draft(source, description, operator, parent_ids, changes, usage)
    mutators.spent_usd, mutators.usage  # LLM totals so far; status 'budget' once max_cost_usd is hit

Proposal.status is one of STATUSES; `usage` is set even for failures so their tokens are counted.
The API key is never logged, stored in a config, draft or record, or pickled.
"""

from mutators.config import MutatorConfig, MutatorConfigError, parse_mode, parse_price
from mutators.context import Context
from mutators.messages import OPERATORS, STATUSES, Draft, LLMUsage, ParentInfo, Proposal
from mutators.operators import Mutators

__all__ = [
    "OPERATORS",
    "STATUSES",
    "Context",
    "Draft",
    "LLMUsage",
    "MutatorConfig",
    "MutatorConfigError",
    "Mutators",
    "ParentInfo",
    "Proposal",
    "parse_mode",
    "parse_price",
]
