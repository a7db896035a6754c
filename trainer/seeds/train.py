"""
Seed genome for evolve: a small modern GPT, trained for a fixed time budget.

Everything in this file is fair game for mutation: model, optimizer, schedule, batch size.
What it cannot touch is the harness (`import harness`): the harness serves training batches,
owns the clock, and scores the model handed to `harness.submit` on validation data this
process never sees. Nothing printed here counts as a score.

Harness API: profile, device, vocab_size, bos_id, seq_len, budget_seconds, seed,
batches(batch_size, seq_len) -> (x, y) until the budget is spent, progress() in [0, 1],
report(step, loss), submit(model) where model(idx[B, T]) -> logits[B, T, vocab_size].
"""

import harness
import torch
import torch.nn as nn
import torch.nn.functional as F

# --- knobs -------------------------------------------------------------------------------
PROFILE = harness.profile
DEPTH = {"h100": 8, "cpu": 3, "smoke": 2}[PROFILE]  # transformer blocks
MODEL_DIM = {"h100": 512, "cpu": 128, "smoke": 64}[PROFILE]  # residual stream width
HEAD_DIM = {"h100": 128, "cpu": 32, "smoke": 32}[PROFILE]  # width of one attention head
DEVICE_BATCH_SIZE = {"h100": 128, "cpu": 16, "smoke": 8}[PROFILE]  # rows per forward pass
GRAD_ACCUM_STEPS = {"h100": 2, "cpu": 1, "smoke": 1}[PROFILE]  # micro-batches per optimizer step
MLP_RATIO = 4  # hidden width of the MLP / MODEL_DIM
LOGIT_SOFTCAP = 15.0  # logits are squashed into (-cap, cap)
ROPE_BASE = 10000.0  # rotary embedding base frequency
MATRIX_LR = 0.02  # Muon learning rate for 2-D weight matrices
EMBED_LR = 0.3  # AdamW learning rate for the token embedding
UNEMBED_LR = 0.004  # AdamW learning rate for the output projection
MUON_MOMENTUM = 0.95  # Muon momentum (Nesterov)
ADAM_BETA1 = 0.8  # AdamW first-moment decay
ADAM_BETA2 = 0.95  # AdamW second-moment decay
WEIGHT_DECAY = 0.0  # decoupled weight decay on matrices
WARMUP_FRAC = 0.0  # fraction of the budget spent warming the LR up
WARMDOWN_FRAC = 0.5  # fraction of the budget spent decaying the LR to FINAL_LR_FRAC
FINAL_LR_FRAC = 0.0  # LR at the end of the budget, as a fraction of the peak
NS_STEPS = 5  # Newton-Schulz iterations in Muon

torch.manual_seed(harness.seed)
ON_CUDA = harness.device.type == "cuda"


# --- model -------------------------------------------------------------------------------
def rms_norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len, head_dim, base):
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x, cos, sin):
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        self.n_head = dim // head_dim
        self.head_dim = head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).unbind(2)
        q = apply_rotary(rms_norm(q), cos[:, :T], sin[:, :T])  # QK-norm, then rotary
        k = apply_rotary(rms_norm(k), cos[:, :T], sin[:, :T])
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.up = nn.Linear(dim, MLP_RATIO * dim, bias=False)
        self.down = nn.Linear(MLP_RATIO * dim, dim, bias=False)

    def forward(self, x):
        return self.down(F.relu(self.up(x)).square())  # ReLU squared


class Block(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        self.attn = Attention(dim, head_dim)
        self.mlp = MLP(dim)

    def forward(self, x, cos, sin):
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, seq_len):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, MODEL_DIM)
        self.blocks = nn.ModuleList([Block(MODEL_DIM, HEAD_DIM) for _ in range(DEPTH)])
        self.lm_head = nn.Linear(MODEL_DIM, vocab_size, bias=False)  # untied from the embedding
        cos, sin = rotary_tables(seq_len, HEAD_DIM, ROPE_BASE)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for block in self.blocks:  # residual branches start at zero
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.down.weight)
        nn.init.zeros_(self.lm_head.weight)

    def forward(self, idx):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=idx.is_cuda):
            x = rms_norm(self.embed(idx))
            for block in self.blocks:
                x = block(x, self.cos, self.sin)
            logits = self.lm_head(rms_norm(x)).float()
        return LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)


# --- optimizer ---------------------------------------------------------------------------
def orthogonalize(g, steps):
    """Approximately replace g by the nearest semi-orthogonal matrix (quintic Newton-Schulz)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if ON_CUDA else g.float()
    x = x / (x.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum SGD whose update for each weight matrix is orthogonalized."""

    def __init__(self, params, lr, momentum, weight_decay):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                update = orthogonalize(p.grad.add(buf, alpha=group["momentum"]), NS_STEPS)
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * scale)


def lr_multiplier(progress):
    if progress < WARMUP_FRAC:
        return (progress + 1e-3) / WARMUP_FRAC
    if progress < 1.0 - WARMDOWN_FRAC:
        return 1.0
    cooldown = (1.0 - progress) / WARMDOWN_FRAC
    return cooldown + (1.0 - cooldown) * FINAL_LR_FRAC


# --- training ----------------------------------------------------------------------------
model = GPT(harness.vocab_size, harness.seq_len).to(harness.device)
matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
muon = Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY)
adam = torch.optim.AdamW(
    [
        dict(params=model.embed.parameters(), lr=EMBED_LR),
        dict(params=model.lm_head.parameters(), lr=UNEMBED_LR),
    ],
    betas=(ADAM_BETA1, ADAM_BETA2),
    eps=1e-10,
    weight_decay=0.0,
)
optimizers = [muon, adam]
for opt in optimizers:
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
train_model = torch.compile(model) if ON_CUDA else model

step, micro, loss_sum = 0, 0, 0.0
for x, y in harness.batches(DEVICE_BATCH_SIZE, harness.seq_len):
    logits = train_model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    (loss / GRAD_ACCUM_STEPS).backward()
    loss_sum += loss.detach()
    micro += 1
    if micro % GRAD_ACCUM_STEPS:
        continue
    multiplier = lr_multiplier(harness.progress())
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
        opt.step()
    model.zero_grad(set_to_none=True)
    train_loss = float(loss_sum) / GRAD_ACCUM_STEPS
    harness.report(step, train_loss)
    if step % 50 == 0:
        print(f"step {step:05d} | loss {train_loss:.4f} | lrm {multiplier:.2f} | progress {harness.progress():.1%}")
    step, loss_sum = step + 1, 0.0

harness.submit(model)

# --- summary -----------------------------------------------------------------------------
print("---")
print(f"steps: {step}")
print(f"num_params_M: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}")
print(f"depth: {DEPTH}")
