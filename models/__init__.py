"""The model families, by name (`nicegan train --arch NAME`), as the official CycleGAN repository
plugs its models in by `--model NAME`.

Each family is a sub-package: its networks under the official module and parameter names, and an
`architecture` module whose ARCHITECTURE implements nicegan.models.architecture.Architecture.
That module is imported only when asked for, so this registry needs no torch (the CLI's --help,
the torch-free runtime).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nicegan.models.architecture import Architecture

ARCHITECTURES = ("nicegan", "cyclegan", "tunit")


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return importlib.import_module(f"nicegan.models.{name}.architecture").ARCHITECTURE
