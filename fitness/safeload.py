"""Loading a genome's exported graph (model.pt2) in the scorer without running any code the genome chose.

The file comes from the sandboxed child, so it is hostile until proven otherwise. torch.export.load is
not safe on such a file: it unpickles weights marked `use_pickle`, custom objects, and the sample inputs
(retrying with weights_only=False when the safe unpickler refuses), and falls back to an older format
that is all pickles. A pickle runs code in the scorer, which holds the held-out tokens and writes the
score. So this module

- reads the archive with torch's own PT2 reader, never its legacy fallback, and refuses any entry outside
  the layout torch.export.save writes, any pickled weight or constant, and sample inputs that the
  restricted (weights_only) unpickler does not accept;
- refuses graphs that call anything but the allowlisted aten operators of `fitness.allowlist` (operators
  that only compute on tensors: no I/O, printing, randomness, storage surgery or uninitialised memory);
- hands out a forward that copies its input and restores every weight, buffer and constant after each
  call, so a graph that writes to its own state cannot remember one forward in the next (which is how a
  stateful graph would replay its unchanged predictions to the causality probe). With random operators
  refused, nothing else a graph can reach outlives a forward.

It reads the file once and loads those bytes, so the sha256 it reports is the hash of what it scored.

Not covered: bugs in torch's graph deserializer or in the kernels of allowed operators.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.export.pt2_archive import _package as pt2
from torch.export.pt2_archive import constants as layout

from fitness import allowlist

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
Forward = Callable[[torch.Tensor], torch.Tensor]
# What the restricted unpickler raises on a blob it refuses or cannot parse.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError)


class UnsafeModel(ValueError):
    """The model file is not a plain exported graph; the message says what was refused."""


@dataclass(frozen=True)
class Loaded:
    program: torch.export.ExportedProgram
    sha256: str  # of the bytes the program was loaded from


def load(path: str | Path) -> Loaded:
    """The exported program in `path`, once its archive and its graph have passed the checks above."""
    blob = Path(path).read_bytes()
    return Loaded(program=_load_bytes(blob), sha256=hashlib.sha256(blob).hexdigest())


def _load_bytes(blob: bytes) -> torch.export.ExportedProgram:
    try:
        reader = pt2.PT2ArchiveReader(io.BytesIO(blob))
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
    """Every node of the graph and of its nested control-flow graphs calls an allowlisted operator."""
    for module in graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op != "call_function":
                raise UnsafeModel(f"graph node {node.name!r} is a {node.op}, not an operator call")
            problem = allowlist.refused(node)
            if problem:
                raise UnsafeModel(f"graph calls {problem}, which a scored model may not use")


def stateless_forward(program: torch.export.ExportedProgram, device: torch.device) -> Forward:
    """model(x) on a copy of x, with every tensor the module holds put back as it was after each call."""
    module = program.module().to(device)
    state = _tensors_of(module)
    pristine = [t.detach().clone() for t in state]

    held = {t.untyped_storage().data_ptr() for t in state}

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        try:
            out = module(x.to(device).clone())
            # logits that share memory with the state would change when it is put back
            return out.clone() if isinstance(out, torch.Tensor) and out.untyped_storage().data_ptr() in held else out
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
