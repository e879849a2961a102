"""nicegan command line: thin click commands, each calling one function of a package."""
from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="nicegan")
def cli() -> None:
    """NICE-GAN unpaired image-to-image translation: train, export to ONNX/TensorRT, translate
    videos, cameras and image folders."""


# --- training -----------------------------------------------------------------------------


# --- export -------------------------------------------------------------------------------


# --- runtime ------------------------------------------------------------------------------


# --- quality and demo ---------------------------------------------------------------------


if __name__ == "__main__":
    cli()
