"""cpu: the 2-core development machine. Shakespeare, a 60 s budget, scoring in a few seconds."""

from fitness.profile import Profile

PROFILE = Profile(
    name="cpu",
    dataset="shakespeare",
    vocab_size=2048,
    seq_len=256,
    budget_seconds=60.0,
    eval_tokens=32_768,
    eval_batch_size=32,
    untimed_steps=1,  # the first step carries one-time allocation costs
    untimed_allowance_s=10.0,
    startup_allowance_s=60.0,
    genome_allowance_s=15.0,  # model build and export, by the trainer's clock from train.py's start
    noise_sigma=0.004,  # the seed's σ between training seeds, measured on a quiet machine
)
