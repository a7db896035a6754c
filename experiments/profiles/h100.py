"""h100: the seed project's setting, one H100 per child, climbmix, 5-minute budget."""

from fitness.profile import Profile

PROFILE = Profile(
    name="h100",
    dataset="climbmix",
    vocab_size=8192,
    seq_len=2048,
    budget_seconds=300.0,
    eval_tokens=40 * 524_288,
    eval_batch_size=128,
    untimed_steps=10,  # torch.compile warm-up, as the seed project excludes its first steps
    untimed_allowance_s=120.0,
    startup_allowance_s=180.0,  # CUDA init, imports, export, plus slack; scoring is timed separately
    genome_allowance_s=60.0,  # model build and export, by the trainer's clock from train.py's start
    num_shards=10,
)
