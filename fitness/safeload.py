"""Loading a genome's exported graph (model.pt2) in the scorer without running any code the genome chose.

The file comes from the sandboxed child, so it is hostile until proven otherwise. torch.export.load is
not safe on such a file: it unpickles weights marked `use_pickle`, custom objects, and the sample inputs
(retrying with weights_only=False when the safe unpickler refuses), and falls back to an older format
that is all pickles. A pickle runs code in the scorer, which holds the held-out tokens and writes the
score. So this module

- reads the archive with torch's own PT2 reader, never its legacy fallback, and refuses any entry outside
  the layout torch.export.save writes, any pickled weight or constant, and sample inputs that the
  restricted (weights_only) unpickler does not accept;
- refuses graphs that call anything but plain aten operators (and the shape arithmetic and control-flow
  wrappers export emits): no other operator namespaces, no file access (aten.from_file), no
  bounds-unchecked or storage-swapping operators, no uninitialized memory (a channel to what an earlier
  forward left behind);
- hands out a forward that copies its input and restores every weight, buffer and constant after each
  call, so a graph that writes to its own state cannot remember one forward in the next (which is how a
  stateful graph would replay its unchanged predictions to the causality probe).

Not covered: bugs in torch's graph deserializer or in the kernels of allowed operators.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch.export.pt2_archive import _package as pt2
from torch.export.pt2_archive import constants as layout

MODEL = "model"  # torch.export.save names the one program in the archive so
_FIXED = {
    layout.ARCHIVE_FORMAT_PATH,
    layout.ARCHIVE_VERSION_PATH,
    ".data/version",
    ".data/serialization_id",
    "byteorder",
    layout.MODELS_FILENAME_FORMAT.format(MODEL),
    layout.WEIGHTS_CONFIG_FILENAME_FORMAT.format(MODEL),
    layout.CONSTANTS_CONFIG_FILENAME_FORMAT.format(MODEL),
    layout.SAMPLE_INPUTS_FILENAME_FORMAT.format(MODEL),
}
_PAYLOAD = re.compile(
    rf"({re.escape(layout.WEIGHTS_DIR + layout.WEIGHT_FILENAME_PREFIX)}"
    rf"|{re.escape(layout.CONSTANTS_DIR + layout.TENSOR_CONSTANT_FILENAME_PREFIX)})\d+"
)
# aten operators a scored graph may not call: file access, storage and size surgery, unchecked indexing,
# and allocation without initialisation.
_DENIED = re.compile(r"from_file|unsafe|^_?set_|^_?resize|swap|^_?empty|^new_empty|^as_strided_|storage")
_CONTROL_FLOW = {"cond", "while_loop", "scan", "map_impl", "wrap_with_set_grad_enabled", "wrap_with_autocast"}
_SHAPE_MODULES = {"_operator", "math"}  # getitem on tuples, SymInt arithmetic
Forward = Callable[[torch.Tensor], torch.Tensor]
# What the restricted unpickler raises on a blob it refuses or cannot parse.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError)


class UnsafeModel(ValueError):
    """The model file is not a plain exported graph; the message says what was refused."""


def load(path: str | Path) -> torch.export.ExportedProgram:
    """The exported program in `path`, once its archive and its graph have passed the checks above."""
    try:
        reader = pt2.PT2ArchiveReader(str(path))
        names = reader.get_file_names()
    except (RuntimeError, AssertionError, OSError, ValueError) as e:
        raise UnsafeModel(f"not a PT2 archive ({type(e).__name__}: {_first_line(e)})") from None
    strange = sorted(n for n in names if n not in _FIXED and not _PAYLOAD.fullmatch(n))
    if strange:
        raise UnsafeModel(f"archive holds entries torch.export.save does not write: {', '.join(strange[:3])}")
    for config in (layout.WEIGHTS_CONFIG_FILENAME_FORMAT, layout.CONSTANTS_CONFIG_FILENAME_FORMAT):
        _check_payloads(reader, config.format(MODEL))
    _check_sample_inputs(reader.read_bytes(layout.SAMPLE_INPUTS_FILENAME_FORMAT.format(MODEL)))
    program = pt2._load_exported_programs(reader, names, None)[MODEL]
    check_graph(program.graph_module)
    return program


def _check_payloads(reader: pt2.PT2ArchiveReader, config_name: str) -> None:
    config = pt2._load_payload_config(reader, config_name)
    for fqn, meta in config.config.items():
        if meta.use_pickle or meta.tensor_meta is None or not _PAYLOAD.fullmatch(_dir_of(config_name) + meta.path_name):
            raise UnsafeModel(f"archive stores {fqn!r} as a pickled object, not a plain tensor")


def _dir_of(config_name: str) -> str:
    return config_name.rsplit("/", 1)[0] + "/"


def _check_sample_inputs(blob: bytes) -> None:
    """torch retries a refused weights_only load with full pickle; a refusal here stops it first."""
    try:
        torch.load(io.BytesIO(blob), weights_only=True)
    except _UNPICKLE_ERRORS as e:
        raise UnsafeModel(f"archive's sample inputs are not plain tensors ({type(e).__name__})") from None


def check_graph(graph_module: torch.fx.GraphModule) -> None:
    """Every node of the graph and of its nested control-flow graphs calls an allowed target."""
    for module in graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op != "call_function":
                raise UnsafeModel(f"graph node {node.name!r} is a {node.op}, not an operator call")
            problem = _refused(node.target)
            if problem:
                raise UnsafeModel(f"graph calls {problem}, which a scored model may not use")


def _refused(target: object) -> str | None:
    if isinstance(target, torch._ops.OpOverload):
        name = f"{target.namespace}.{target._opname}"
        return name if target.namespace != "aten" or _DENIED.search(target._opname) else None
    if isinstance(target, torch._ops.HigherOrderOperator):
        return None if target.name() in _CONTROL_FLOW else f"higher-order operator {target.name()}"
    module = getattr(target, "__module__", None)
    if module in _SHAPE_MODULES or (module == "torch" and getattr(target, "__name__", "").startswith("sym_")):
        return None
    return repr(target)[:80]


def stateless_forward(program: torch.export.ExportedProgram, device: torch.device) -> Forward:
    """model(x) on a copy of x, with every tensor the module holds put back as it was after each call."""
    module = program.module().to(device)
    state = _tensors_of(module)
    pristine = [t.detach().clone() for t in state]

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        try:
            return module(x.to(device).clone())
        finally:
            for tensor, saved in zip(state, pristine, strict=True):
                tensor.detach().copy_(saved)

    return forward


def _tensors_of(module: torch.nn.Module) -> list[torch.Tensor]:
    found: dict[int, torch.Tensor] = {}
    for sub in module.modules():
        for value in (*sub.parameters(recurse=False), *sub.buffers(recurse=False), *vars(sub).values()):
            if isinstance(value, torch.Tensor):
                found.setdefault(id(value), value)
    return list(found.values())


def _first_line(error: BaseException) -> str:
    """The first sentence of the first line: torch's loader errors go on at length."""
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0][:160] if text else ""
