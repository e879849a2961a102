"""What a deployable model says about itself.

Written by the export stage into ONNX `metadata_props` (keys prefixed `nicegan.`) and into the
JSON sidecar of a TensorRT engine; read by the runtime to choose the size policy and I/O.
"""
from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

PREFIX = "nicegan."
INPUT_NAME = "input"
OUTPUT_NAME = "output"
LATENT_NAME = "z"   # a latent model's second input: float32 (1, latent_dim), the same code for every frame
STYLE_NAME = "style"   # the style encoder graph's output: float32 (1, latent_dim)
CODES = ("latent", "style")   # what z is: MSGAN's random code (translate --seed) or TUNIT's style code
ROLES = ("translator", "style-encoder")


@dataclass(frozen=True)
class ModelInfo:
    arch: str = "nicegan"          # "nicegan" | "cyclegan"
    direction: str = "a2b"         # "a2b" | "b2a" (CycleGAN: "a2b")
    light: bool = True             # light models accept any H, W (multiples of size_multiple)
    img_size: int = 256            # training size; the only accepted size when dynamic_hw is False
    io: str = "uint8"              # "uint8": NHWC BGR uint8 in/out; "float": NCHW RGB float32 [-1, 1]
    precision: str = "fp32"        # "fp32" | "fp16"
    dynamic_hw: bool = True
    size_multiple: int = 4
    source_sha256: str = ""
    step: int = 0
    scale: int = 1                 # the graph runs its network at scale x the input size (export --scale)
    averaged_steps: str = ""       # "7000,7500,...": the weights are the mean of these snapshots (export pt)
    latent_dim: int = 0            # > 0: a multimodal model with the second input LATENT_NAME
    code: str = "latent"           # what LATENT_NAME takes (CODES): "style" for TUNIT (translate --reference/--domain)
    role: str = "translator"       # "style-encoder": TUNIT's reference -> style code graph (ROLES)
    style: str = ""                # the style baked into a one-input TUNIT graph (export --reference/--domain)
    style_encoder: str = ""        # the file name of a style model's encoder graph, beside the model
    domains: int = 0               # a style model's pseudo-domains (translate --domain 0..domains-1)
    domain_styles: str = ""        # their mean styles: base64 of float32 (domains, latent_dim), little-endian
    domain_counts: str = ""        # "12,0,30": the test images each mean style averages (0: no style)

    def to_metadata(self) -> dict[str, str]:
        return {PREFIX + k: _encode(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> "ModelInfo":
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = props.get(PREFIX + f.name)
            if raw is not None:
                values[f.name] = _decode(raw, f.type)
        return cls(**values)


def latent_for_seed(seed: int, dim: int) -> np.ndarray:
    """The latent code of `translate --seed SEED`: (1, dim) float32 draws of N(0, 1) from NumPy's
    PCG64 generator, computed on the host so that every backend gets the same values (an in-graph
    RandomNormal would follow each runtime's own generator)."""
    return np.random.default_rng(seed).standard_normal((1, dim)).astype(np.float32)


def encode_styles(styles: np.ndarray) -> str:
    """(K, D) codes as the exact text of ModelInfo.domain_styles."""
    return base64.b64encode(np.ascontiguousarray(styles, dtype="<f4").tobytes()).decode("ascii")


def decode_styles(info: ModelInfo) -> np.ndarray:
    """ModelInfo.domain_styles as (domains, latent_dim) float32."""
    raw = np.frombuffer(base64.b64decode(info.domain_styles), dtype="<f4")
    return raw.reshape(info.domains, info.latent_dim).astype(np.float32)


def model_info_from_onnx(props: dict[str, str], uint8_input: bool, height: Any, width: Any) -> ModelInfo:
    """ModelInfo of an ONNX graph: its nicegan.* metadata, or for graphs exported elsewhere what its
    input says (uint8 NHWC or float NCHW; a fixed height and width mean a full, fixed-size model)."""
    if any(key.startswith(PREFIX) for key in props):
        return ModelInfo.from_metadata(props)
    fixed = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
    return ModelInfo(arch="unknown", io="uint8" if uint8_input else "float", light=not fixed,
                     dynamic_hw=not fixed, img_size=height if fixed else 256)


def _encode(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def _decode(raw: str, type_name: Any) -> Any:
    if type_name in (bool, "bool"):
        return raw.strip().lower() in ("1", "true", "yes")
    if type_name in (int, "int"):
        return int(raw)
    return raw
