"""
A small GPT written against autoresearch's genome API, sized for a CPU.

It imports its harness the autoresearch way (`from prepare import ...`), takes attention from
`kernels.get_kernel(...)` with sliding windows, times itself against TIME_BUDGET, and ends with
`evaluate_bpb` and a `---` summary. Under evolve, `prepare` and `kernels` are the harness's stand-ins.
"""

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from kernels import get_kernel
from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, evaluate_bpb, make_dataloader

attention = get_kernel("kernels-community/flash-attn3").flash_attn_interface

# ---------------------------------------------------------------------------
# Hyperparameters (edit these directly, no CLI flags needed)
# ---------------------------------------------------------------------------

ASPECT_RATIO = 32  # model_dim = DEPTH * ASPECT_RATIO, rounded up to HEAD_DIM
HEAD_DIM = 32  # width of one attention head
WINDOW_PATTERN = "SL"  # per-layer attention window: S = half the context, L = all of it
DEPTH = 2  # transformer blocks
DEVICE_BATCH_SIZE = 8  # rows per forward pass
TOTAL_BATCH_SIZE = 2**10  # tokens per optimizer step
EMBEDDING_LR = 0.05  # AdamW learning rate for the token embedding
MATRIX_LR = 0.01  # AdamW learning rate for the blocks
UNEMBEDDING_LR = 0.005  # AdamW learning rate for the output head
ADAM_BETAS = (0.8, 0.95)  # AdamW beta1, beta2
WEIGHT_DECAY = 0.0  # decoupled weight decay on the blocks
WARMDOWN_RATIO = 0.5  # fraction of the time budget spent decaying the LR
FINAL_LR_FRAC = 0.0  # LR at the end, as a fraction of the peak
LOGIT_SOFTCAP = 15.0  # logits are squashed into (-cap, cap)

# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary(x, cos, sin):
    half = x.size(-1) // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos + b * sin, b * cos - a * sin], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, dim, n_head, window):
        super().__init__()
        self.n_head, self.window = n_head, window
        self.c_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.c_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.c_qkv(x).view(B, T, 3, self.n_head, C // self.n_head).unbind(2)
        q, k = norm(rotary(q, cos, sin)), norm(rotary(k, cos, sin))
        y = attention.flash_attn_func(q, k, v, causal=True, window_size=(self.window, 0))
        return self.c_proj(y.reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, dim, n_head, window):
        super().__init__()
        self.attn = SelfAttention(dim, n_head, window)
        self.c_fc = nn.Linear(dim, 4 * dim, bias=False)
        self.c_out = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x, cos, sin):
        x = x + self.attn(norm(x), cos, sin)
        return x + self.c_out(F.relu(self.c_fc(norm(x))).square())


class GPT(nn.Module):
    def __init__(self, vocab_size, dim, n_head):
        super().__init__()
        windows = [MAX_SEQ_LEN // 2 if c == "S" else MAX_SEQ_LEN for c in WINDOW_PATTERN]
        windows = [windows[i % len(windows)] for i in range(DEPTH - 1)] + [MAX_SEQ_LEN]
        self.wte = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList([Block(dim, n_head, w) for w in windows])
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)
        freqs = torch.outer(
            torch.arange(MAX_SEQ_LEN).float(), 10000.0 ** -(torch.arange(0, dim // n_head, 2) / (dim // n_head))
        )
        self.register_buffer("cos", freqs.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", freqs.sin()[None, :, None, :], persistent=False)
        for block in self.blocks:
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.c_out.weight)

    def forward(self, idx, targets=None, reduction="mean"):
        T = idx.size(1)
        x = norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, self.cos[:, :T], self.sin[:, :T])
        logits = self.lm_head(norm(x)).float()
        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=reduction)


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

t_start = time.time()
torch.manual_seed(42)
tokenizer = Tokenizer.from_directory()
vocab_size = tokenizer.get_vocab_size()
model_dim = ((DEPTH * ASPECT_RATIO + HEAD_DIM - 1) // HEAD_DIM) * HEAD_DIM
model = GPT(vocab_size, model_dim, model_dim // HEAD_DIM)
num_params = sum(p.numel() for p in model.parameters())
grad_accum_steps = max(1, TOTAL_BATCH_SIZE // (DEVICE_BATCH_SIZE * MAX_SEQ_LEN))
optimizer = torch.optim.AdamW(
    [
        dict(params=model.wte.parameters(), lr=EMBEDDING_LR, weight_decay=0.0),
        dict(params=model.blocks.parameters(), lr=MATRIX_LR, weight_decay=WEIGHT_DECAY),
        dict(params=model.lm_head.parameters(), lr=UNEMBEDDING_LR, weight_decay=0.0),
    ],
    betas=ADAM_BETAS,
    eps=1e-10,
)
for group in optimizer.param_groups:
    group["initial_lr"] = group["lr"]
model = torch.compile(model, dynamic=False)
train_loader = make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train")
x, y, epoch = next(train_loader)


def get_lr_multiplier(progress):
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    cooldown = (1.0 - progress) / WARMDOWN_RATIO
    return cooldown + (1 - cooldown) * FINAL_LR_FRAC


# ---------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------

t_start_training = time.time()
total_training_time = 0.0
step = 0
while True:
    t0 = time.time()
    for _ in range(grad_accum_steps):
        loss = model(x, y)
        train_loss = loss.detach()
        (loss / grad_accum_steps).backward()
        x, y, epoch = next(train_loader)
    progress = min(total_training_time / TIME_BUDGET, 1.0)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * get_lr_multiplier(progress)
    optimizer.step()
    model.zero_grad(set_to_none=True)
    if train_loss.item() > 100:
        print("FAIL")
        exit(1)
    dt = time.time() - t0
    if step > 10:
        total_training_time += dt
    if step % 20 == 0:
        print(f"step {step:05d} ({100 * progress:.1f}%) | loss: {train_loss.item():.4f} | epoch: {epoch}")
    step += 1
    if step > 10 and total_training_time >= TIME_BUDGET:
        break

model.eval()
val_bpb = evaluate_bpb(model, tokenizer, DEVICE_BATCH_SIZE)

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------

with torch.no_grad():
    idx = torch.tensor([[tokenizer.get_bos_token_id()]])
    for _ in range(16):
        idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {total_training_time:.1f}")
print(f"total_seconds:    {time.time() - t_start:.1f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.2f}")
print(f"depth:            {DEPTH}")
print(f"sample:           {tokenizer.decode(idx[0].tolist()[1:])!r}")
