"""GenomeStore: the run's git repository, one commit per genome.

A genome's commit tree holds exactly `train.py`; its parents are the genome's parents (a crossover is
a real merge commit); its message is `<operator>: <description>` followed by trailers for the
generation, the creation time and free-form metadata. Each genome is pinned by a ref
`refs/genomes/<id>` (so `git gc` never prunes one), and HEAD follows `refs/heads/best`, so plain
`git log --graph`, `git diff A B` and `git show ID:train.py` work inside the run directory.

Objects are written with gitpython's loose object database (no subprocess per child); the ref is
written last, so a crash mid-commit leaves at most an unreferenced object, never half a genome.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import io
import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import git
from gitdb import IStream, LooseObjectDB

from population.errors import AmbiguousGenome, RunDirError, UnknownGenome
from population.messages import Genome

log = logging.getLogger(__name__)

FILE = "train.py"
GENOME_REFS = "refs/genomes/"
BEST_REF = "refs/heads/best"
AUTHOR = "evolve <evolve@localhost>"
_HEX = frozenset("0123456789abcdef")
_ENTRY = b"100644 " + FILE.encode() + b"\0"
CHANGES = "changes"  # the Meta key a genome's changes are stored under
_OPERATOR = re.compile(r"[A-Za-z0-9_.-]+")


class _Header(NamedTuple):
    """Everything about a genome except its source, which is read from git on demand."""

    parents: tuple[str, ...]
    operator: str
    description: str
    generation: int
    created: str
    meta: dict
    tree: str


def normalize_source(source: str) -> str:
    """Unix line endings and exactly one final newline: sources that differ only there are the same."""
    return source.replace("\r\n", "\n").rstrip("\n") + "\n"


def one_line(text: str) -> str:
    """Collapse any whitespace (newlines, tabs) to single spaces: descriptions are one line."""
    return " ".join(text.split())


def tree_id(source: str) -> str:
    """The git tree hash a genome with this source gets (the dedupe key), computed without git."""
    data = normalize_source(source).encode()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).digest()
    tree = _ENTRY + blob
    return hashlib.sha1(b"tree %d\0" % len(tree) + tree).hexdigest()


class GenomeStore:
    """Reads and writes genome commits; keeps an in-memory index of ids, trees and headers."""

    def __init__(self, repo: git.Repo, headers: dict[str, _Header]) -> None:
        self._repo = repo
        self._loose = LooseObjectDB(str(Path(repo.git_dir) / "objects"))  # writes in-process, no subprocess
        self._headers = headers
        self._sorted_ids = sorted(headers)
        self._by_tree = {h.tree: gid for gid, h in headers.items()}
        self._order = {gid: i for i, gid in enumerate(headers)}  # parents before children

    @classmethod
    def create(cls, path: Path) -> GenomeStore:
        repo = git.Repo.init(path)
        repo.git.symbolic_ref("HEAD", BEST_REF)
        with repo.config_writer() as config:
            config.set_value("core", "bare", "true")  # the run dir is no work tree: git status won't list the files
        return cls(repo, {})

    @classmethod
    def load(cls, path: Path) -> GenomeStore:
        try:
            repo = git.Repo(path)
            out = repo.git.log(
                f"--glob={GENOME_REFS}*", "--topo-order", "--reverse", "--format=%H%x1f%T%x1f%P%x1f%B%x1e"
            )
        except (git.exc.GitError, ValueError) as e:
            raise RunDirError(f"cannot read the genome repository in {str(path)!r}: {_one_line(e)}") from None
        headers = {}
        for record in filter(str.strip, out.split("\x1e")):
            gid, tree, parents, message = record.strip("\n").split("\x1f")
            headers[gid] = _parse_message(gid, tree, tuple(parents.split()), message)
        return cls(repo, headers)

    def __len__(self) -> int:
        return len(self._headers)

    def order(self) -> dict[str, int]:
        """Each genome's position in creation order (parents before children)."""
        return self._order

    def find_source(self, source: str) -> str | None:
        """The id of the genome whose source equals `source` (after normalize_source), if any."""
        return self._by_tree.get(tree_id(source))

    def resolve(self, prefix: str) -> str:
        """The one full id starting with `prefix`; UnknownGenome or AmbiguousGenome otherwise."""
        key = prefix.strip().lower()
        if not key or not set(key) <= _HEX:
            raise UnknownGenome(f"no genome id starts with {prefix!r}")
        i = bisect.bisect_left(self._sorted_ids, key)
        hits = []
        while i < len(self._sorted_ids) and self._sorted_ids[i].startswith(key) and len(hits) < 4:
            hits.append(self._sorted_ids[i])
            i += 1
        if not hits:
            raise UnknownGenome(f"no genome id starts with {prefix!r}")
        if len(hits) > 1:
            shown = ", ".join(h[: len(key) + 4] for h in hits[:3])
            raise AmbiguousGenome(f"genome id prefix {prefix!r} is ambiguous: {shown}, ...")
        return hits[0]

    def parents_of(self, genome_id: str) -> tuple[str, ...]:
        return self._headers[genome_id].parents

    def operator_of(self, genome_id: str) -> str:
        return self._headers[genome_id].operator

    def get(self, id_or_prefix: str) -> Genome:
        gid = self.resolve(id_or_prefix)
        h = self._headers[gid]
        source = self._read(h.tree).decode()
        meta = dict(h.meta)
        changes = tuple(meta.pop(CHANGES, ()))  # stored in the commit's Meta trailer, handed out as a field
        return Genome(gid, h.parents, h.operator, h.description, source, h.generation, h.created, meta, changes)

    def commit(
        self,
        source: str,
        parents: tuple[str, ...],
        operator: str,
        description: str,
        *,
        generation: int,
        created: str,
        meta: dict,
    ) -> Genome:
        """Write one genome commit and pin it with its ref (the commit point); parents must exist."""
        if not _OPERATOR.fullmatch(operator):
            raise ValueError(f"operator must be one word of letters, digits, '_.-', got {operator!r}")
        genome = Genome(
            "", parents, operator, one_line(description), normalize_source(source), generation, created, meta
        )
        blob = self._store(b"blob", genome.source.encode())
        tree = self._store(b"tree", _ENTRY + bytes.fromhex(blob))
        stamp = f"{AUTHOR} {_epoch(created)} +0000"
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents), f"author {stamp}", f"committer {stamp}"]
        gid = self._store(b"commit", ("\n".join(lines) + "\n\n" + _format_message(genome)).encode())
        git.Reference.create(self._repo, GENOME_REFS + gid, gid, force=True)
        self._headers[gid] = _Header(parents, operator, genome.description, generation, created, meta, tree)
        self._by_tree[tree] = gid
        self._order[gid] = len(self._order)
        bisect.insort(self._sorted_ids, gid)
        return dataclasses.replace(genome, id=gid)

    def set_best(self, genome_id: str) -> None:
        """Point refs/heads/best (and so HEAD) at the current best genome."""
        git.Reference.create(self._repo, BEST_REF, genome_id, force=True)

    def close(self) -> None:
        self._repo.close()

    def _read(self, tree: str) -> bytes:
        """train.py's bytes from a genome tree (its one entry: mode, name, NUL, 20-byte blob id)."""
        entry = self._repo.odb.stream(bytes.fromhex(tree)).read()
        if not entry.startswith(_ENTRY) or len(entry) != len(_ENTRY) + 20:
            raise RunDirError(f"tree {tree[:12]} does not hold exactly {FILE}")
        return self._repo.odb.stream(entry[-20:]).read()

    def _store(self, kind: bytes, data: bytes) -> str:
        return self._loose.store(IStream(kind, len(data), io.BytesIO(data))).hexsha.decode()


def _one_line(error: Exception) -> str:
    """git's own complaint on one line (gitpython's message spans several: command line, exit code, stderr)."""
    text = str(getattr(error, "stderr", "") or error)
    lines = [line.strip().removeprefix("stderr: ").strip("'") for line in text.splitlines() if line.strip()]
    return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[0] if lines else "")


def _format_message(genome: Genome) -> str:
    lines = [f"{genome.operator}: {genome.description}", "", f"Generation: {genome.generation}"]
    lines.append(f"Created: {genome.created}")
    if genome.meta:
        lines.append("Meta: " + json.dumps(genome.meta, sort_keys=True))
    return "\n".join(lines) + "\n"


def _parse_message(gid: str, tree: str, parents: tuple[str, ...], message: str) -> _Header:
    subject, _, body = message.partition("\n")
    operator, sep, description = subject.partition(": ")
    trailers = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
    if not sep or "Generation" not in trailers or "Created" not in trailers:
        raise RunDirError(f"commit {gid[:12]} is not a genome commit: {subject!r}")
    try:
        generation = int(trailers["Generation"])
        meta = json.loads(trailers.get("Meta", "{}"))
    except ValueError:
        raise RunDirError(f"commit {gid[:12]} has damaged trailers: {body.strip()!r}") from None
    return _Header(parents, operator, description, generation, trailers["Created"], meta, tree)


def _epoch(created: str) -> int:
    """Seconds since the epoch for an ISO timestamp (naive means UTC), used as the commit date."""
    try:
        stamp = datetime.fromisoformat(created)
    except ValueError:
        raise ValueError(f"created must be an ISO timestamp, got {created!r}") from None
    if stamp.tzinfo is None:
        return int((stamp - datetime(1970, 1, 1)).total_seconds())
    return int(stamp.timestamp())
