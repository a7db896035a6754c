"""MutatorConfig parsing, the keyless fallback, and operator choice."""

from __future__ import annotations

import logging
import math
import random

import pytest

from mutators import MutatorConfig, MutatorConfigError, Mutators, parse_mode, parse_price
from mutators.config import DEFAULT_MODEL, PRICES


def test_mode_mix_is_normalised_to_weights():
    assert parse_mode("llm:0.7,offline:0.3") == pytest.approx({"llm": 0.7, "offline": 0.3})
    assert parse_mode("llm:3,offline:1") == pytest.approx({"llm": 0.75, "offline": 0.25})
    assert parse_mode("offline") == {"offline": 1.0}


@pytest.mark.parametrize("mode", ["gpt", "llm:x", "llm:0.5,magic:0.5", "llm:-1", "llm:0,offline:0"])
def test_bad_mode_is_one_line_quoting_it(mode):
    with pytest.raises(MutatorConfigError, match=f"bad mode {mode!r}"):
        parse_mode(mode)


def test_from_cli_converts_strings_and_takes_a_price_for_any_model():
    config = MutatorConfig.from_cli(
        mode="llm", model="my-model", max_cost_usd="2.5", max_tokens="4000", price="2/10", base_url=None
    )
    assert config.max_cost_usd == 2.5 and config.max_tokens == 4000 and config.base_url is None
    assert config.rates == (2.0, 10.0) and config.resolved()["price"] == [2.0, 10.0]


def test_the_default_model_is_current_in_the_installed_sdk_and_priced():
    import typing

    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types import ModelParam

    known = typing.get_args(typing.get_args(ModelParam)[0])
    assert DEFAULT_MODEL in known and DEFAULT_MODEL not in DEPRECATED_MODELS
    assert MutatorConfig().rates is not None
    assert not [name for name, *_ in PRICES if name in DEPRECATED_MODELS]


def test_a_model_without_a_known_price_runs_with_cost_unknown_but_refuses_a_dollar_budget():
    config = MutatorConfig.from_cli(mode="llm", model="claude-mythos-5-2")
    assert config.rates is None and config.resolved()["price"] is None
    with pytest.raises(MutatorConfigError, match="no price known for model 'claude-mythos-5-2'.*--price IN/OUT"):
        MutatorConfig.from_cli(mode="llm", model="claude-mythos-5-2", max_cost_usd="5")
    assert MutatorConfig.from_cli(mode="llm", model="claude-mythos-5-2", max_cost_usd="5", price="3/15").rates


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_tokens": "lots"}, "bad max_tokens 'lots': expected int"),
        ({"timeout_s": "0"}, "bad timeout_s 0.0: must be > 0"),
        ({"max_concurrency": "0"}, "bad max_concurrency 0"),
        ({"price": "3"}, "bad price '3': expected IN/OUT"),
        ({"price": "3/-1"}, "bad price '3/-1'"),
        ({"model": ""}, "bad model ''"),
        ({"colour": "blue"}, "unknown mutator setting 'colour'"),
    ],
)
def test_bad_cli_values_raise_one_line_quoting_the_value(values, message):
    with pytest.raises(MutatorConfigError) as error:
        MutatorConfig.from_cli(**values)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_price_parses_input_and_output_rates():
    assert parse_price("0.5/4") == (0.5, 4.0)


def test_auto_without_key_logs_once_and_goes_offline(monkeypatch, caplog):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with caplog.at_level(logging.INFO, logger="mutators"):
        mutators = Mutators(MutatorConfig(mode="auto"))
    assert not mutators.llm_available and mutators.spent_usd == 0.0 and mutators.usage is None
    assert len([r for r in caplog.records if "ANTHROPIC_API_KEY" in r.getMessage()]) == 1
    rng = random.Random(0)
    assert {mutators.choose_operator(rng, 2) for _ in range(200)} == {"hyperparam", "merge"}


@pytest.mark.parametrize("mode", ["llm", "llm:0.5,offline:0.5"])
def test_explicit_llm_without_key_is_a_config_error(monkeypatch, mode):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MutatorConfigError, match="ANTHROPIC_API_KEY is not set"):
        Mutators(MutatorConfig(mode=mode))


def test_choose_operator_follows_mode_weights_and_parent_count():
    mutators = Mutators(MutatorConfig(mode="llm:0.75,offline:0.25", crossover_rate=0.5), api_key="sk-test-dummy")
    rng = random.Random(0)
    ops = [mutators.choose_operator(rng, 2) for _ in range(4000)]
    llm_share = sum(op in ("mutate", "crossover") for op in ops) / len(ops)
    assert math.isclose(llm_share, 0.75, abs_tol=0.03)
    assert math.isclose(ops.count("crossover") / ops.count("mutate"), 1.0, abs_tol=0.1)
    assert {mutators.choose_operator(rng, 1) for _ in range(200)} == {"mutate", "hyperparam"}


def test_choose_operator_is_offline_once_the_budget_is_spent():
    mutators = Mutators(MutatorConfig(mode="llm", max_cost_usd=0.0), api_key="sk-test-dummy")
    rng = random.Random(0)
    assert {mutators.choose_operator(rng, 1) for _ in range(50)} == {"hyperparam"}


def test_transplant_share_is_the_rate_times_the_offline_share_and_rate_zero_draws_nothing():
    rng = random.Random(0)
    share = Mutators(MutatorConfig(mode="offline", transplant_rate=0.25), api_key_from_env=False)
    assert math.isclose(sum(share.wants_transplant(rng) for _ in range(4000)) / 4000, 0.25, abs_tol=0.03)
    state = rng.getstate()
    never = Mutators(MutatorConfig(mode="offline", transplant_rate=0.0), api_key_from_env=False)
    assert not any(never.wants_transplant(rng) for _ in range(100)) and rng.getstate() == state
    mixed = Mutators(MutatorConfig(mode="llm:0.6,offline:0.4", transplant_rate=0.5), api_key="sk-test-dummy")
    assert math.isclose(sum(mixed.wants_transplant(rng) for _ in range(4000)) / 4000, 0.2, abs_tol=0.03)
    llm = Mutators(MutatorConfig(mode="llm"), api_key="sk-test-dummy")
    assert not any(llm.wants_transplant(rng) for _ in range(100))  # no offline family, no transplants
    with pytest.raises(MutatorConfigError, match="bad transplant_rate 1.5"):
        MutatorConfig.from_cli(transplant_rate="1.5")
