"""The errors population raises at its edges: a bad run directory, a bad genome id, a bad draft."""

from __future__ import annotations


class RunDirError(ValueError):
    """The directory is not a run, or its genome repository or archive is damaged."""


class InvalidGenome(ValueError):
    """A draft's source breaks the genome contract (fitness.interface.check_genome)."""


class GenomeIdError(LookupError):
    """A typed genome id (or prefix) that does not name exactly one genome."""

    def __str__(self) -> str:  # LookupError would quote the message with repr()
        return str(self.args[0]) if self.args else ""


class UnknownGenome(GenomeIdError):
    """No genome id starts with the prefix."""


class AmbiguousGenome(GenomeIdError):
    """Several genome ids start with the prefix."""
