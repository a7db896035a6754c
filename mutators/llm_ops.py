"""The LLM operators: mutate, crossover, repair. Each is one conversation of bounded length.

A reply that cannot become an acceptable child (no edits, edits that do not match, prose only,
truncated, a broken body, a child that does not parse, breaks the harness, equals its parent or is
already known) is answered with a feedback message saying what was wrong, up to `max_attempts`
replies; then the proposal fails with a status. Nothing here raises for a bad reply.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from mutators import prompting
from mutators.accept import IsDuplicate, vet
from mutators.context import Context
from mutators.edits import EditError, apply_edits, parse_reply
from mutators.llm_client import LLMClient, LLMFailure, LLMReply
from mutators.messages import Draft, LLMUsage, ParentInfo, Proposal, failed, one_line
from mutators.offline import knob_changes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One LLM operator call: the prompt, the text edits apply to, and who the parents are."""

    operator: str
    prompt: prompting.Prompt
    base_source: str  # edits apply to this text
    parents: tuple[ParentInfo, ...]
    context: Context


def mutate(client: LLMClient, parent: ParentInfo, context: Context, attempts: int, dup: IsDuplicate | None) -> Proposal:
    task = Task("mutate", prompting.mutate_prompt(parent, context), parent.source, (parent,), context)
    return run(client, task, attempts, dup)


def crossover(
    client: LLMClient,
    a: ParentInfo,
    b: ParentInfo,
    ancestor: str | None,
    context: Context,
    attempts: int,
    dup: IsDuplicate | None,
) -> Proposal:
    prompt = prompting.crossover_prompt(a, b, ancestor, context)
    return run(client, Task("crossover", prompt, a.source, (a, b), context), attempts, dup)


def repair(
    client: LLMClient,
    child: ParentInfo,
    error_tail: str,
    context: Context,
    attempts: int,
    dup: IsDuplicate | None,
) -> Proposal:
    """A fixed copy of `child`, described as 'repair: <child's idea> [fix: <what was fixed>]'."""
    prompt = prompting.repair_prompt(child, error_tail, context)
    proposal = run(client, Task("repair", prompt, child.source, (child,), context), attempts, dup)
    if not proposal.ok:
        return proposal
    intent = child.description.removeprefix("repair: ").split(" [fix: ")[0] or "unnamed idea"
    description = one_line(f"repair: {intent} [fix: {proposal.draft.description}]")
    return dataclasses.replace(proposal, draft=dataclasses.replace(proposal.draft, description=description))


def run(client: LLMClient, task: Task, attempts: int, dup: IsDuplicate | None) -> Proposal:
    """Converse until a reply yields an acceptable child or `attempts` replies have been spent."""
    system = prompting.system_blocks(task.context.program)
    messages: list[dict] = [{"role": "user", "content": task.prompt.content()}]
    usage = LLMUsage(client.total.model)
    status, reason = "malformed", "no reply"
    for attempt in range(1, attempts + 1):
        try:
            reply = client.complete(system, messages)
        except LLMFailure as failure:
            usage = usage + failure.usage if failure.usage is not None else usage
            if failure.status != "malformed":
                return failed(failure.status, task.operator, failure.reason, usage, _transcript(system, messages))
            status, reason = "malformed", failure.reason  # nothing to answer: ask again as before
            log.info("%s attempt %d/%d: %s", task.operator, attempt, attempts, reason)
            continue
        usage = usage + reply.usage
        outcome = _judge(reply, task, dup)
        if isinstance(outcome, Draft):
            draft = dataclasses.replace(outcome, usage=usage)
            transcript = _transcript(system, [*messages, {"role": "assistant", "content": reply.text}])
            return Proposal("ok", task.operator, draft=draft, usage=usage, transcript=transcript)
        status, reason = outcome
        log.info("%s attempt %d/%d rejected (%s): %s", task.operator, attempt, attempts, status, reason)
        messages += [
            {"role": "assistant", "content": reply.text.strip() or "(empty reply)"},
            {"role": "user", "content": prompting.feedback(reason)},
        ]
    reason = f"no usable child in {attempts} replies; last: {reason}"
    return failed(status, task.operator, reason, usage, _transcript(system, messages))


def _transcript(system: list[dict], messages: list[dict]) -> tuple[dict, ...]:
    return ({"role": "system", "content": system}, *messages)


def _judge(reply: LLMReply, task: Task, dup: IsDuplicate | None) -> Draft | tuple[str, str]:
    """The child a reply describes, or (status, problem) to feed back."""
    if reply.stop_reason == "max_tokens":
        return "malformed", "the reply was cut off at the output token limit; send fewer, smaller edits"
    try:
        parsed = parse_reply(reply.text)
        source = parsed.full_source if parsed.full_source is not None else apply_edits(task.base_source, parsed.edits)
    except EditError as e:
        return "malformed", str(e)
    verdict = vet(source, [p.source for p in task.parents], dup)
    if verdict is not None:
        return verdict[0], _explain(*verdict, task.operator)
    description = one_line(parsed.description, 200)
    changes = (
        *knob_changes(task.base_source, source, task.context.profile),
        _line_stats(task.base_source, source),
    )
    return Draft(source, description, task.operator, tuple(p.id for p in task.parents), changes)


def _explain(status: str, reason: str, operator: str) -> str:
    hints = {
        "invalid": "the resulting train.py is not acceptable",
        "unchanged": "the edits change nothing that runs",
        "duplicate": "that exact script was already tried; propose a different idea",
    }
    if operator == "repair":  # a fix that lands on a known script has usually dropped the idea with the bug
        hints["duplicate"] = "that fix gives a script already tried (did it drop the idea?); keep the idea, fix the bug"
    return f"{hints.get(status, status)} ({reason})"


def _line_stats(old: str, new: str) -> str:
    diff = prompting.unified_diff(old, new).splitlines()[2:]
    added = sum(line.startswith("+") for line in diff)
    removed = sum(line.startswith("-") for line in diff)
    return f"+{added} -{removed} lines"
