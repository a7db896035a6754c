"""The operators a scored graph may call: an allowlist of aten operators that only compute on tensors.

A scored model runs in the scorer, next to the held-out tokens and the reply channel, so its graph may
only use operators whose every effect is the tensor they return: arithmetic, reductions, matmuls,
normalisation, attention, indexing that checks its bounds, shapes and views, and tensors created with
defined contents. Anything else is refused, including operators that

- do I/O or print (aten._print, aten.from_file, and every operator outside the aten namespace);
- draw random numbers (rand, dropout, bernoulli, sdpa with dropout_p > 0): the generator is state that
  survives from one forward into the next, and makes two forwards of the same rows differ;
- touch storage or sizes behind the tensor's back (set_, resize_, as_strided, *unsafe*), read memory
  nobody initialised (empty*: what an earlier forward left behind), or skip bounds checks;
- loop for as long as the data says (while_loop): compute that no shape bounds.

An in-place variant (add_) is allowed when its functional form writes values only (never for views).
Shape arithmetic on SymInts and the control-flow wrappers export emits (cond, scan, map, autocast and
grad-mode regions) are allowed; their bodies are checked like the top-level graph.
"""

from __future__ import annotations

import torch

_ELEMENTWISE = """
abs absolute neg negative positive add sub subtract rsub mul multiply div divide true_divide floor_divide
remainder fmod pow float_power sqrt rsqrt exp exp2 expm1 log log2 log10 log1p sin cos tan asin acos atan
atan2 arctan2 sinh cosh tanh asinh acosh atanh sigmoid logit erf erfc erfinv reciprocal sign sgn signbit
floor ceil round trunc frac fix clamp clamp_min clamp_max clip minimum maximum fmin fmax lerp addcmul addcdiv
hypot copysign xlogy square relu relu6 gelu silu mish softplus elu selu celu leaky_relu hardtanh hardsigmoid
hardswish log_sigmoid log_sigmoid_forward glu prelu _prelu_kernel threshold softshrink hardshrink where
masked_fill nan_to_num isnan isinf isfinite isneginf isposinf logical_and logical_or logical_not logical_xor
bitwise_and bitwise_or bitwise_xor bitwise_not bitwise_left_shift bitwise_right_shift __and__ __or__ __xor__
__lshift__ __rshift__ eq ne lt le gt ge equal heaviside lgamma digamma logaddexp logaddexp2 sinc deg2rad
rad2deg fill zero special_erf special_expit special_xlogy
"""
_REDUCTIONS = """
sum nansum mean nanmean prod amax amin max min aminmax argmax argmin std var var_mean std_mean norm
linalg_vector_norm frobenius_norm logsumexp cumsum cumprod cummax cummin logcumsumexp all any count_nonzero
softmax _softmax log_softmax _log_softmax _safe_softmax sort topk kthvalue median nanmedian msort argsort diff
"""
_MATMULS = """
mm bmm addmm addmv addbmm baddbmm mv matmul linear dot vdot outer einsum _addmm_activation convolution
_convolution conv1d conv2d conv3d conv_transpose1d conv_transpose2d
"""
_LAYERS = """
layer_norm native_layer_norm rms_norm _fused_rms_norm group_norm native_group_norm batch_norm
_native_batch_norm_legit_no_training instance_norm embedding one_hot scaled_dot_product_attention
_scaled_dot_product_flash_attention _scaled_dot_product_flash_attention_for_cpu
_scaled_dot_product_efficient_attention _scaled_dot_product_cudnn_attention avg_pool1d avg_pool2d
max_pool1d max_pool2d max_pool2d_with_indices adaptive_avg_pool1d adaptive_avg_pool2d _adaptive_avg_pool2d
upsample_nearest1d upsample_nearest2d upsample_linear1d _fft_r2c _fft_c2r _fft_c2c fft_rfft fft_irfft
fft_fft fft_ifft view_as_real view_as_complex real imag conj resolve_conj resolve_neg complex polar angle
"""
_INDEXING = """
index index_select gather take take_along_dim scatter scatter_add scatter_reduce index_add index_copy
index_fill index_put masked_scatter masked_select nonzero bucketize searchsorted select slice narrow
slice_scatter select_scatter diagonal_scatter
"""
_SHAPES = """
view reshape permute transpose t expand expand_as squeeze unsqueeze flatten unflatten contiguous clone split
split_with_sizes chunk unbind cat concat concatenate stack hstack vstack repeat repeat_interleave tile flip
roll movedim unfold tril triu diag diagonal diag_embed pad constant_pad_nd reflection_pad1d replication_pad1d
_to_copy to type_as alias detach lift_fresh_copy view_as broadcast_to copy _assert_tensor_metadata
"""
_CREATION = """
zeros ones full arange linspace logspace eye scalar_tensor zeros_like ones_like full_like new_zeros new_ones
new_full tril_indices triu_indices
"""
_SCALARS = """
_local_scalar_dense item sym_size sym_stride sym_numel sym_storage_offset _assert_scalar _assert_async
sym_constrain_range sym_constrain_range_for_size
"""
ATEN = frozenset(
    " ".join((_ELEMENTWISE, _REDUCTIONS, _MATMULS, _LAYERS, _INDEXING, _SHAPES, _CREATION, _SCALARS)).split()
)
# In-place forms write values, never sizes or strides (unsqueeze_ on a buffer would outlive the forward).
IN_PLACE = frozenset(_ELEMENTWISE.split()) | {
    "copy",
    "cumsum",
    "cumprod",
    "index_put",
    "index_add",
    "index_copy",
    "index_fill",
    "masked_scatter",
    "scatter",
    "scatter_add",
    "scatter_reduce",
    "tril",
    "triu",
    "baddbmm",
    "addmm",
    "addbmm",
    "addmv",
}
# Dropout is the identity when its `train` argument is False, as an eval-mode nn.Dropout exports.
DROPOUT = frozenset({"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout"})
CONTROL_FLOW = frozenset({"cond", "scan", "map_impl", "wrap_with_set_grad_enabled", "wrap_with_autocast"})
_SHAPE_MODULES = {"_operator", "math"}  # getitem on tuples, SymInt arithmetic


def refused(node: torch.fx.Node) -> str | None:
    """What is wrong with a call_function node, or None when the scorer may run it."""
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return _refused_aten(target, node)
    if isinstance(target, torch._ops.HigherOrderOperator):
        return None if target.name() in CONTROL_FLOW else f"higher-order operator {target.name()}"
    module = getattr(target, "__module__", None)
    if module in _SHAPE_MODULES or (module == "torch" and getattr(target, "__name__", "").startswith("sym_")):
        return None
    return repr(target)[:80]


def _refused_aten(target: torch._ops.OpOverload, node: torch.fx.Node) -> str | None:
    name = f"{target.namespace}.{target._opname}"
    in_place = target._opname.endswith("_") and target._opname.removesuffix("_") in IN_PLACE
    if target.namespace == "aten" and target._opname in DROPOUT:
        return None if _argument(target, node, "train", True) is False else f"{name} in training mode (random)"
    if target.namespace != "aten" or not (target._opname in ATEN or in_place):
        return name
    dropout = _dropout_p(target, node)
    if dropout:
        return f"{name} with dropout_p={dropout} (random)"
    return None


def _dropout_p(target: torch._ops.OpOverload, node: torch.fx.Node) -> float:
    """Attention's own dropout draws random numbers: allowed only at 0 (any operator with a dropout_p)."""
    value = _argument(target, node, "dropout_p", 0.0)
    return float(value) if isinstance(value, (int, float)) else 1.0


def _argument(target: torch._ops.OpOverload, node: torch.fx.Node, name: str, default: object) -> object:
    """The value a node passes for the argument `name` of its operator's schema (`default` if it has none)."""
    names = [argument.name for argument in target._schema.arguments]
    if name not in names:
        return default
    index = names.index(name)
    return node.kwargs.get(name, node.args[index] if len(node.args) > index else default)
