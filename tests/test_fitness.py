"""The harness's pure parts: tokenizer, data splits and rows, bits-per-byte arithmetic, causality probe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fitness import data, datasets, probing, scoring, tokenizer


@pytest.fixture(scope="module")
def cache():
    return data.prepare("shakespeare", 512, (64,))


def test_tokenizer_round_trips_text_exactly(cache):
    enc = tokenizer.load(cache.tokenizer_path)
    samples = ["To be, or not to be: that is the question.\n", "  odd   spacing\t\ttabs\r\n", "é, ß, 😀, 中文", ""]
    samples += datasets.shakespeare_documents("val")[:3]
    for text in samples:
        assert enc.decode(enc.encode_ordinary(text)) == text


def test_tokenizer_has_bos_as_last_token(cache):
    enc = tokenizer.load(cache.tokenizer_path)
    assert enc.n_vocab == 512
    assert enc.encode(tokenizer.BOS, allowed_special="all") == [511]
    assert np.load(cache.token_bytes_path)[511] == 0


def test_splits_are_disjoint_fixed_plays_of_about_ten_percent():
    sizes = {split: sum(map(len, datasets.shakespeare_documents(split))) for split in datasets.SPLITS}
    total = sum(sizes.values())
    assert 0.08 < sizes["val"] / total < 0.12 and 0.08 < sizes["test"] / total < 0.12
    assert not set(datasets.SHAKESPEARE_VAL) & set(datasets.SHAKESPEARE_TEST)
    assert "**" not in datasets.shakespeare_documents("train")[0]


def test_rows_start_at_document_starts_and_never_overlap(cache):
    tokens, rows = cache.tokens("val"), cache.rows("val", 64)
    assert (np.diff(rows) >= 64).all()
    docs = np.load(cache.docs_path("val"))
    at_doc_start = np.isin(rows, docs)
    assert at_doc_start.sum() > 0.9 * len(docs)  # nearly every scene opens a row, and that row opens with BOS
    assert (tokens[rows[at_doc_start]] == 511).all()
    offsets = rows[:, None] - docs[None, :]
    assert ((offsets >= 0) & (offsets % 64 == 0)).any(axis=1).all()


def test_val_bpb_matches_hand_computation():
    # Vocab of 3: token 0 = "a" (1 byte), token 1 = "bc" (2 bytes), token 2 = BOS (0 bytes, not counted).
    token_bytes = torch.tensor([1, 2, 0])
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]]))
    targets = torch.tensor([[0, 1, 2]])
    nats, nbytes = scoring.nats_and_bytes(logits, targets, token_bytes)
    assert nats == pytest.approx(-math.log(0.5) - math.log(0.8))
    assert nbytes == 3
    assert scoring.bits_per_byte(nats, nbytes) == pytest.approx((1 + math.log2(1.25)) / 3)


def probe(forward, x: torch.Tensor, seed: int | None = None, batch_size: int | None = None) -> float:
    """val_bpb of `forward` on rows whose inputs are x, with the contract probes (count 3) among the forwards."""
    rows = torch.cat([x, x[:, :1]], dim=1)
    token_bytes = torch.ones(16, dtype=torch.long)
    token_bytes[-1] = 0
    batch_size = batch_size or x.size(0)
    with torch.no_grad():
        return probing.score(forward, {"val": rows}, token_bytes, batch_size, count=3, seed=seed).bpb["val"]


def test_scoring_pads_partial_batches_and_normalises_logits():
    vocab, seq = 5, 4
    token_bytes = torch.tensor([1, 1, 1, 1, 0])
    rows = torch.randint(0, 4, (3, seq + 1))
    shifted = lambda x: torch.zeros(x.size(0), x.size(1), vocab) + 7.0  # uniform after log_softmax
    bpb = probing.score(shifted, {"val": rows, "test": rows}, token_bytes, batch_size=2, count=3).bpb
    assert bpb["val"] == pytest.approx(math.log2(vocab)) and bpb["test"] == pytest.approx(math.log2(vocab))


def test_causality_probe_accepts_causal_and_rejects_peeking_models():
    emb = torch.nn.Embedding(16, 16)
    causal = lambda x: emb(x).cumsum(dim=1)
    peeking = lambda x: emb(x) + emb(x).mean(dim=1, keepdim=True)
    x = torch.randint(0, 15, (2, 32))
    probe(causal, x)
    with pytest.raises(scoring.ContractError, match="non-causal"):
        probe(peeking, x)


def test_probe_rejects_a_model_that_reads_other_rows_of_the_batch():
    emb = torch.nn.Embedding(16, 16)
    causal = lambda x: emb(x).cumsum(dim=1)
    batch_mixing = lambda x: causal(x) + causal(x).mean(dim=0, keepdim=True)  # causal in time, leaks across rows
    with pytest.raises(scoring.ContractError, match="not independent|non-causal"):  # whichever probe runs first
        probe(batch_mixing, torch.randint(0, 15, (4, 32)))


def _peek_next_token(x: torch.Tensor, where: torch.Tensor, scale: float = 30.0) -> torch.Tensor:
    """Logits that put `scale` on the token after each position where `where` [B, T] is true."""
    ahead = torch.nn.functional.one_hot(x.roll(-1, dims=1), 16).float() * scale
    return ahead * where[..., None]


def test_probe_catches_peeking_confined_to_the_first_row():
    x = torch.randint(0, 15, (16, 64))
    row0 = lambda x: _peek_next_token(x, (torch.arange(x.size(0)) == 0)[:, None].expand(-1, x.size(1)))
    with pytest.raises(scoring.ContractError, match="non-causal"):
        probe(row0, x)


def test_probe_catches_peeking_that_skips_the_positions_a_fixed_probe_would_check():
    old_fixed = [(64 * (i + 1)) // 16 - 1 for i in range(15)]  # where the previous probe always cut
    skip = torch.ones(64, dtype=torch.bool)
    skip[old_fixed] = False
    sly = lambda x: _peek_next_token(x, skip[None, :].expand(x.size(0), -1))
    with pytest.raises(scoring.ContractError, match="non-causal"):
        probe(sly, torch.randint(0, 15, (16, 64)))


def test_probe_catches_peeking_scaled_below_the_old_tolerance():
    """A peek of 0.009 nats at every position passed the old 1e-2 tolerance; it is 90x today's."""
    everywhere = lambda x: _peek_next_token(x, torch.ones(x.shape, dtype=torch.bool), scale=0.009)
    with pytest.raises(scoring.ContractError, match="non-causal"):
        probe(everywhere, torch.randint(0, 15, (16, 64)))


def test_probe_catches_a_row_reading_the_start_of_the_next_row():
    """Scoring rows are consecutive text: the next row's first token is this row's last target."""

    def next_row(x):
        logits = torch.zeros(*x.shape, 16)
        logits[:-1, -1] = torch.nn.functional.one_hot(x[1:, 0], 16).float() * 30.0
        return logits

    with pytest.raises(scoring.ContractError, match="not independent"):
        probe(next_row, torch.randint(0, 15, (16, 64)))


def test_the_same_prediction_computed_twice_moves_by_exactly_zero_and_a_tiny_shift_is_measured():
    logits = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0)) * 10
    shifted = logits.clone()
    shifted[1, 3, 5] += 1e-3
    compared = torch.ones(2, 8, dtype=torch.bool)
    assert scoring.gap(logits, logits.clone(), compared).max() == 0.0
    moved = scoring.gap(logits, shifted, compared)
    # raising one logit by d raises its token's log-probability by d * (1 - p) and lowers every other's by
    # d * p, p being its probability: the largest change is d * max(p, 1 - p), anywhere from d/2 to d
    d = (shifted[1, 3, 5] - logits[1, 3, 5]).double()
    p = logits[1, 3].double().softmax(-1)[5]
    assert moved[1, 3] == pytest.approx(float(d * max(p, 1 - p)), rel=0.01)
    assert moved[0].max() == 0 and moved[1, 4] == 0


def test_each_batch_is_scored_once_and_probes_fall_among_them_at_random_places():
    emb = torch.nn.Embedding(16, 16)
    seen: list[torch.Tensor] = []
    causal = lambda x: seen.append(x.clone()) or emb(x).cumsum(dim=1)
    x = torch.randint(0, 15, (32, 32))
    first_probe = set()
    for seed in range(8):
        seen.clear()
        probe(causal, x, seed=seed, batch_size=4)
        batches = [i for i, b in enumerate(seen) if any(torch.equal(b, x[j : j + 4]) for j in range(0, 32, 4))]
        assert len(seen) == 8 + 4 and len(batches) == 8  # 8 batches of 4 rows once each, and 4 probes
        first_probe.add(min(set(range(len(seen))) - set(batches)))
    assert len(first_probe) > 2  # not always first, not at one fixed place


def test_probe_rows_are_spliced_from_scored_rows_never_noise():
    rows = torch.randint(0, 15, (8, 17))
    generator = torch.Generator().manual_seed(0)
    work = probing.batches("val", rows, 4)
    for p in probing.draw([b.x for b in work], 3, generator):
        for row in p.x:
            assert ((row[None, :] == rows[:, :-1]).any(dim=0)).all()  # each position's token is a scored row's
        assert p.x.shape == (4, 16)


def test_wrong_logits_shape_and_nan_logits_are_rejected():
    with pytest.raises(scoring.ContractError) as shape:
        scoring.check_logits(torch.zeros(2, 4, 7), 2, 4, 8)
    assert shape.value.status == "invalid"
    with pytest.raises(scoring.ContractError) as nan:
        scoring.check_logits(torch.full((2, 4, 8), float("nan")), 2, 4, 8)
    assert nan.value.status == "nan"


def test_one_non_finite_logit_anywhere_is_caught():
    for value in (float("nan"), float("inf"), -float("inf")):
        for where in ((0, 0, 0), (1, 3, 7), (1, 2, 5)):
            logits = torch.randn(2, 4, 8)
            logits[where] = value
            with pytest.raises(scoring.ContractError, match="NaN or inf"):
                scoring.check_logits(logits, 2, 4, 8)
    scoring.check_logits(torch.randn(2, 4, 8) * 1e30, 2, 4, 8)  # huge but finite is fine


def test_eval_rows_refuses_more_tokens_than_the_split_has(cache):
    with pytest.raises(datasets.DatasetError, match="scoring needs"):
        data.eval_rows(cache, "val", 64, 10**9)
