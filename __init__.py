"""nicegan: unpaired image-to-image translation from training to the edge.

One import package: `nicegan.trainer` (training, checkpoints), `nicegan.models` (the networks
of each model family), `nicegan.evaluation` (`nicegan eval`), `nicegan.datasets` (`nicegan
data`), `nicegan.export` (ONNX, TensorRT), `nicegan.runtime` (backends, sources, sinks, the
translate pipeline) and `nicegan.cli`. The runtime does not need torch.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nicegan")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"
