"""smoke: a few seconds end to end, for tests. Same code paths as cpu, tiny sizes."""

from fitness.profile import Profile

PROFILE = Profile(
    name="smoke",
    dataset="shakespeare",
    vocab_size=512,
    seq_len=64,
    budget_seconds=2.0,
    eval_tokens=4_096,
    eval_batch_size=16,
    startup_allowance_s=45.0,
)
