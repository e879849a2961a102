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


def require(module: str, needed_for: str, install: str) -> ModuleType:
    """Import an optional module, or raise MissingDependency with the install command.

    `needed_for` names the feature ("nicegan data's photos"), `install` the command
    ("pip install scikit-image")."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"{needed_for} needs the {module.split('.')[0]} package ({exc}); "
                                f"install it with `{install}`") from None
