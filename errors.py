"""The one base of every user error, with no third-party import, so the CLI can catch it on a
machine without torch (the Jetson runtime install).

A user error is bad input, output, model or option: its message is one line that names the file
(or option) and the fix. `nicegan.cli` catches `NiceganError` once and prints that line; anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations

import importlib
from types import ModuleType


class NiceganError(Exception):
    """A user error; str(error) is the one line the CLI prints."""


class MissingDependency(NiceganError):
    """An optional package that a command needs is not installed."""


def require(module: str, needed_for: str, fix: str) -> ModuleType:
    """Import an optional module, or raise MissingDependency in one line.

    `needed_for` names what needs it ("running model.onnx"), `fix` says what to do
    ("install it with `pip install onnxruntime`")."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        absent = isinstance(exc, ModuleNotFoundError) and exc.name == package
        why = "" if absent else f" (it is installed but does not import: {exc})"   # e.g. a missing native library
        raise MissingDependency(f"{needed_for} needs the {package} package{why}; {fix}") from None
