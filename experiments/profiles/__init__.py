"""Hardware profiles, one small module each. `load(name)` returns a fitness.Profile."""

from __future__ import annotations

import importlib

from fitness.profile import Profile

NAMES = ("h100", "cpu", "smoke")


class UnknownProfile(ValueError):
    pass


def load(name: str) -> Profile:
    if name not in NAMES:
        raise UnknownProfile(f"unknown profile {name!r}; expected one of {', '.join(NAMES)}")
    return importlib.import_module(f"experiments.profiles.{name}").PROFILE


def default_name() -> str:
    """h100 when CUDA is present, cpu otherwise."""
    import torch

    return "h100" if torch.cuda.is_available() else "cpu"
