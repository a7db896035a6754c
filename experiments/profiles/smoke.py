"""smoke: a few seconds end to end, for tests. Same code paths as cpu, tiny sizes."""

from fitness.profile import Profile

PROFILE = Profile(
    name="smoke",
    dataset="shakespeare",
    vocab_size=512,
    seq_len=64,
    budget_seconds=4.0,
    untimed_steps=1,  # the first step carries one-time allocation costs
    untimed_allowance_s=5.0,
    eval_tokens=4_096,
    eval_batch_size=16,
    startup_allowance_s=45.0,
)
