"""The scorer's model gate: hostile model.pt2 files are refused before any of their code or pickles run."""

from __future__ import annotations

import builtins
import pickle
import zipfile

import pytest
import torch

from fitness import safeload

X = torch.zeros(2, 4, dtype=torch.long)


class Bigram(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(16, 16)

    def forward(self, idx):
        return self.table(idx)


class Remembers(Bigram):
    """Counts its calls in a buffer: a graph with state could replay one forward in the next."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, idx):
        self.calls.add_(1.0)
        return self.table(idx) + self.calls


class Payload:
    def __reduce__(self):
        return (exec, ("import builtins; builtins.EVOLVE_PWNED = True",))


def save(model: torch.nn.Module, path) -> None:
    torch.export.save(torch.export.export(model.eval(), (X,), strict=False), path)


def replace_entry(src, dst, suffix: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, data if info.filename.endswith(suffix) else old.read(info.filename))


def test_plain_exported_graph_loads_and_runs(tmp_path):
    save(Bigram(), tmp_path / "model.pt2")
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2"), torch.device("cpu"))
    assert forward(X).shape == (2, 4, 16)


def test_pickle_smuggled_into_the_archive_is_refused_without_running(tmp_path):
    save(Bigram(), tmp_path / "model.pt2")
    replace_entry(tmp_path / "model.pt2", tmp_path / "evil.pt2", "sample_inputs/model.pt", pickle.dumps(Payload()))
    with pytest.raises(safeload.UnsafeModel, match="sample inputs are not plain tensors"):
        safeload.load(tmp_path / "evil.pt2")
    assert not hasattr(builtins, "EVOLVE_PWNED")


def test_extra_or_legacy_entries_are_refused(tmp_path):
    save(Bigram(), tmp_path / "model.pt2")
    with zipfile.ZipFile(tmp_path / "model.pt2", "a") as archive:
        archive.writestr("model/serialized_state_dict.json", pickle.dumps(Payload()))
    with pytest.raises(safeload.UnsafeModel, match="does not write"):
        safeload.load(tmp_path / "model.pt2")


def test_files_that_are_not_archives_are_refused(tmp_path):
    (tmp_path / "model.pt2").write_bytes(b"val_bpb: 0.01\n")
    with pytest.raises(safeload.UnsafeModel, match="not a PT2 archive"):
        safeload.load(tmp_path / "model.pt2")


def test_graph_that_reads_a_file_is_refused(tmp_path):
    secret = tmp_path / "val.bin"
    secret.write_bytes(bytes(range(8)))

    class Reader(Bigram):
        def forward(self, idx):
            held_out = torch.from_file(str(secret), shared=False, size=8, dtype=torch.uint8)
            return self.table(idx) + held_out[:1].float()

    lib = torch.library.Library("aten", "FRAGMENT")  # what a genome does to make from_file exportable
    fake = lambda filename, shared=None, size=0, **kw: torch.empty(size, dtype=kw.get("dtype"))
    torch.library.register_fake("aten::from_file", fake, lib=lib)
    try:
        save(Reader(), tmp_path / "model.pt2")
    finally:
        lib._destroy()
    with pytest.raises(safeload.UnsafeModel, match="aten.from_file"):
        safeload.load(tmp_path / "model.pt2")


def test_graph_state_does_not_survive_between_forwards(tmp_path):
    save(Remembers(), tmp_path / "model.pt2")
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2"), torch.device("cpu"))
    first, second = forward(X), forward(X)
    assert torch.equal(first, second)


def test_graph_cannot_write_into_the_rows_it_is_given(tmp_path):
    class Scribbler(Bigram):
        def forward(self, idx):
            out = self.table(idx)
            idx.zero_()
            return out

    save(Scribbler(), tmp_path / "model.pt2")
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2"), torch.device("cpu"))
    rows = torch.ones(2, 4, dtype=torch.long)
    forward(rows)
    assert rows.eq(1).all()
