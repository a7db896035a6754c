"""The `kernels` module an autoresearch train.py sees inside the sandbox: `get_kernel(repo)`.

autoresearch takes FlashAttention-3 from the Hugging Face `kernels` package and calls
`get_kernel(repo).flash_attn_interface.flash_attn_func(q, k, v, causal=True, window_size=(left, 0))`
on (B, T, H, D) tensors. Here that call resolves to
- the real kernel, when the `kernels` package is installed and the kernel is in its local cache
  (HF_HUB_OFFLINE is set, so nothing is downloaded inside the sandbox), on CUDA tensors, in training;
- otherwise, and always while the model is being exported for scoring, `flash_attn_func` below: the
  same contract on torch's scaled_dot_product_attention with a causal sliding-window mask, so the
  exported graph holds only plain aten operators the scorer accepts.
One line in the log says which is in use.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType, SimpleNamespace

import torch
import torch.nn.functional as F

# What loading or fetching a kernel raises when the package, its dependencies or the cached files are missing.
_UNAVAILABLE = (ImportError, OSError, RuntimeError, ValueError, AttributeError)


def flash_attn_func(q, k, v, causal: bool = False, window_size: tuple[int, int] = (-1, -1), softmax_scale=None):
    """Attention over (B, T, H, D) q and (B, T, Hkv, D) k, v; key j is seen from query i when
    i - left <= j <= i + right (a negative bound is unlimited) and, if causal, j <= i."""
    if k.size(2) != q.size(2):  # grouped-query attention: share each kv head among q.size(2) // Hkv heads
        k = k.repeat_interleave(q.size(2) // k.size(2), dim=2)
        v = v.repeat_interleave(q.size(2) // v.size(2), dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    mask = _window_mask(q.size(2), k.size(2), causal, window_size, q.device)
    if mask is None:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=softmax_scale)
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=softmax_scale)
    return y.transpose(1, 2)


def _window_mask(tq: int, tk: int, causal: bool, window: tuple[int, int], device) -> torch.Tensor | None:
    """Boolean (tq, tk) mask of the keys each query sees, or None when plain causal attention says it all."""
    left, right = window
    right = 0 if causal else right
    if causal and tq == tk and (left < 0 or left >= tk - 1):
        return None
    offset = torch.arange(tq, device=device)[:, None] - torch.arange(tk, device=device)[None, :]  # i - j
    keep = torch.ones(tq, tk, dtype=torch.bool, device=device)
    if left >= 0:
        keep = keep & (offset <= left)
    if right >= 0:
        keep = keep & (offset >= -right)
    return keep


class _Dispatch:
    """flash_attn_func that uses the real kernel where it can, the fallback where it must."""

    def __init__(self, real):
        self.real = real

    def flash_attn_func(self, q, k, v, *args, **kwargs):
        if self.real is None or not q.is_cuda or torch.compiler.is_exporting():
            return flash_attn_func(q, k, v, *args, **kwargs)
        return self.real.flash_attn_func(q, k, v, *args, **kwargs)


def get_kernel(repo_id: str, *args, **kwargs) -> SimpleNamespace:
    """The kernel `repo_id` from the local cache if the real package has it, else the fallback."""
    real, why = _cached_kernel(repo_id, *args, **kwargs)
    if real is not None:
        print(f"kernels: {repo_id} from the local cache (exports use the scaled_dot_product_attention fallback)")
    else:
        print(f"kernels: fallback flash_attn_func on scaled_dot_product_attention ({why})")
    return SimpleNamespace(flash_attn_interface=_Dispatch(real))


def _cached_kernel(repo_id: str, *args, **kwargs):
    os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub reads it: the local cache only, no downloads
    package = _real_package()
    if package is None:
        return None, "the kernels package is not installed"
    try:
        return package.get_kernel(repo_id, *args, **kwargs).flash_attn_interface, ""
    except _UNAVAILABLE as e:
        return None, f"{repo_id} is not usable from the local cache: {type(e).__name__}"


def _real_package() -> ModuleType | None:
    """The installed `kernels` package, loaded under its own name while this module stands aside."""
    spec = importlib.machinery.PathFinder.find_spec("kernels")
    if spec is None or spec.loader is None:
        return None
    package = importlib.util.module_from_spec(spec)
    ours = sys.modules.get("kernels")
    sys.modules["kernels"] = package  # its own `from kernels.x import y` must find the package
    try:
        spec.loader.exec_module(package)
    except _UNAVAILABLE:
        return None
    finally:
        if ours is not None:
            sys.modules["kernels"] = ours
    return package
