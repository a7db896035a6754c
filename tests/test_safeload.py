"""The scorer's model gate: hostile model.pt2 files are refused before any of their code or pickles run."""

from __future__ import annotations

import builtins
import hashlib
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
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2").program, torch.device("cpu"))
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
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2").program, torch.device("cpu"))
    first, second = forward(X), forward(X)
    assert torch.equal(first, second)


def test_graph_cannot_write_into_the_rows_it_is_given(tmp_path):
    class Scribbler(Bigram):
        def forward(self, idx):
            out = self.table(idx)
            idx.zero_()
            return out

    save(Scribbler(), tmp_path / "model.pt2")
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2").program, torch.device("cpu"))
    rows = torch.ones(2, 4, dtype=torch.long)
    forward(rows)
    assert rows.eq(1).all()


def test_load_reports_the_sha256_of_the_bytes_it_loaded(tmp_path):
    save(Bigram(), tmp_path / "model.pt2")
    assert (
        safeload.load(tmp_path / "model.pt2").sha256
        == hashlib.sha256((tmp_path / "model.pt2").read_bytes()).hexdigest()
    )


def _export_with(forward_body, tmp_path):
    class Model(Bigram):
        def forward(self, idx):
            return forward_body(self, idx)

    save(Model(), tmp_path / "model.pt2")
    return tmp_path / "model.pt2"


@pytest.mark.parametrize(
    ("body", "operator"),
    [
        (lambda m, idx: (torch.ops.aten._print("val_bpb: 0.01"), m.table(idx))[1], "aten._print"),
        (lambda m, idx: m.table(idx) + torch.rand(idx.shape + (16,)), "aten.rand"),
        (lambda m, idx: torch.nn.functional.dropout(m.table(idx), 0.5, training=True), "aten.dropout in training"),
        (lambda m, idx: m.table(idx) + torch.empty(16).zero_(), "aten.empty"),
    ],
    ids=["print", "random", "dropout", "uninitialised"],
)
def test_operators_off_the_allowlist_are_refused(body, operator, tmp_path):
    path = _export_with(body, tmp_path)
    with pytest.raises(safeload.UnsafeModel, match=f"graph calls {operator}"):
        safeload.load(path)


def test_attention_with_dropout_is_refused_and_without_is_allowed(tmp_path):
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def attend(m, idx, p):
        x = m.table(idx)[:, None]
        return sdpa(x, x, x, dropout_p=p, is_causal=True)[:, 0]

    safeload.load(_export_with(lambda m, idx: attend(m, idx, 0.0), tmp_path))
    with pytest.raises(safeload.UnsafeModel, match="dropout_p=0.1"):
        safeload.load(_export_with(lambda m, idx: attend(m, idx, 0.1), tmp_path))


def test_logits_that_alias_the_graph_state_are_not_reverted_with_it(tmp_path):
    class Returns(Bigram):
        def __init__(self):
            super().__init__()
            self.register_buffer("out", torch.zeros(2, 4, 16))

        def forward(self, idx):
            self.out.add_(self.table(idx))
            return self.out

    save(Returns(), tmp_path / "model.pt2")
    forward = safeload.stateless_forward(safeload.load(tmp_path / "model.pt2").program, torch.device("cpu"))
    first, second = forward(X), forward(X)
    assert torch.equal(first, second) and first.abs().sum() > 0


def test_dropout_in_eval_mode_is_the_identity_and_allowed(tmp_path):
    path = _export_with(lambda m, idx: torch.nn.functional.dropout(m.table(idx), 0.5, training=False), tmp_path)
    forward = safeload.stateless_forward(safeload.load(path).program, torch.device("cpu"))
    assert forward(X).shape == (2, 4, 16)
