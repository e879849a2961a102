"""The TensorRT names the project touches, checked against the real Python bindings of 8.6, 10.x, 11.x.

`scripts/fetch_trt_bindings.sh` downloads the official bindings wheels and compiles a stub of the
native libraries; each version is imported in a subprocess (LD_LIBRARY_PATH -> the stub) and
introspected. The factories (Builder, Runtime, OnnxParser) are never called.
Regenerate the snapshot used by the logic tests' fakes with
`python tests/test_tensorrt_api_surface.py --write-snapshot`.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nicegan.export import to_tensorrt
from nicegan.export.to_tensorrt import OPTIONAL_API, REQUIRED_API

ROOT = Path(__file__).resolve().parents[1]
BINDINGS = ROOT / ".cache" / "trt-bindings"
SNAPSHOT = Path(__file__).with_name("data") / "trt_api_surface.json"
SOURCES = [ROOT / "export" / "to_tensorrt.py", ROOT / "runtime" / "backends" / "tensorrt_backend.py"]
VERSIONS = {
    "8.6.1": "tensorrt_bindings-8.6.1",
    "10.13.3.9": "tensorrt_cu12_bindings-10.13.3.9",
    "10.16.1.11": "tensorrt_cu12_bindings-10.16.1.11",
    "11.4.0.106": "tensorrt_cu13_bindings-11.4.0.106",
}

# Runs inside the subprocess, with `trt` = the real bindings module.
PROBE = r"""
import json, sys
import numpy as np
import tensorrt_bindings as trt
from nicegan.export import to_tensorrt as t

def present(owner, name):
    obj = trt if owner == "module" else getattr(trt, owner, None)
    return obj is not None and hasattr(obj, name)

tables = {}
for table in (t.REQUIRED_API, t.OPTIONAL_API):
    for owner, names in table.items():
        tables.setdefault(owner, {}).update({n: present(owner, n) for n in names})
enums = {e: {n: int(v) for n, v in getattr(trt, e).__members__.items()}
         for e in ("NetworkDefinitionCreationFlag", "DataType", "LayerType", "TensorIOMode", "BuilderFlag")}
caps = t.detect_capabilities(trt)
recipes = {}
for fp16 in (False, True):
    for requested in ("auto", "strong", "weak"):
        try:
            recipe = t.choose_recipe(caps, "m.onnx", fp16, requested)
            recipes[f"{requested}/{'fp16' if fp16 else 'fp32'}"] = [recipe, t.network_flags(trt, caps, recipe)]
        except t.TensorRTError as exc:
            recipes[f"{requested}/{'fp16' if fp16 else 'fp32'}"] = ["error", str(exc)]
nptypes = {n: np.dtype(trt.nptype(getattr(trt.DataType, n))).name for n in ("FLOAT", "HALF", "UINT8")}
print(json.dumps({"version": trt.__version__, "surface": tables, "enums": enums,
                  "capabilities": caps.__dict__, "recipes": recipes, "nptype": nptypes}))
"""


_PROBED: dict[str, dict] = {}


def probe(version: str) -> dict:
    if version not in _PROBED:
        _PROBED[version] = _run_probe(version)
    return _PROBED[version]


def _run_probe(version: str) -> dict:
    folder = BINDINGS / VERSIONS[version]
    if not (folder / "tensorrt_bindings" / "__init__.py").is_file():
        pytest.skip(f"TensorRT {version} bindings not fetched: run scripts/fetch_trt_bindings.sh (needs PyPI)")
    env = dict(os.environ, LD_LIBRARY_PATH=str(BINDINGS / "lib"),
               PYTHONPATH=os.pathsep.join([str(folder), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def snapshot() -> dict:
    return json.loads(SNAPSHOT.read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_every_required_name_exists(version):
    result = probe(version)
    assert result["version"] == version
    missing = [f"{owner}.{name}" for owner, names in REQUIRED_API.items()
               for name in names if not result["surface"][owner][name]]
    assert missing == [], f"TensorRT {version} lacks {missing}"


@pytest.mark.parametrize("version", VERSIONS)
def test_snapshot_used_by_the_fakes_matches_the_bindings(version, snapshot):
    result = probe(version)
    assert snapshot[version] == {k: result[k] for k in ("surface", "enums")}, \
        "regenerate with `python tests/test_tensorrt_api_surface.py --write-snapshot`"


@pytest.mark.parametrize("version", VERSIONS)
def test_feature_detection_and_recipes_on_the_real_enums(version):
    result = probe(version)
    caps, recipes, enums = result["capabilities"], result["recipes"], result["enums"]
    major = int(version.split(".")[0])
    # the version matrix of the notes (section 1.1), seen through the code's own detection
    assert caps["implicit_batch_exists"] == (major == 8)
    assert caps["strongly_typed"] == (major >= 10)
    assert caps["weak_fp16"] == (major < 11)
    assert caps["optimization_level"]
    strong_bit = enums["NetworkDefinitionCreationFlag"].get("STRONGLY_TYPED")
    if major == 8:
        assert recipes["auto/fp32"] == ["weakly-typed", 1 << enums["NetworkDefinitionCreationFlag"]["EXPLICIT_BATCH"]]
        assert recipes["strong/fp16"][0] == "error"
    else:
        assert recipes["auto/fp16"] == ["strongly-typed", 1 << strong_bit]
        assert recipes["auto/fp32"][0] == "error" and "nicegan export onnx --fp16" in recipes["auto/fp32"][1]
    if major == 10:
        assert recipes["weak/fp32"] == ["weakly-typed", 0]     # EXPLICIT_BATCH is implied in 10.x
    if major == 11:
        assert recipes["weak/fp32"][0] == "error" and "removed in 11" in recipes["weak/fp32"][1]
    assert result["nptype"] == {"FLOAT": "float32", "HALF": "float16", "UINT8": "uint8"}


def test_strongly_typed_flag_renumbered_between_10_and_11(snapshot):
    """Why flags are looked up by name: the same member has another value in 11."""
    values = {v: snapshot[v]["enums"]["NetworkDefinitionCreationFlag"].get("STRONGLY_TYPED") for v in snapshot}
    assert values["10.16.1.11"] != values["11.4.0.106"]
    assert "EXPLICIT_BATCH" not in snapshot["11.4.0.106"]["enums"]["NetworkDefinitionCreationFlag"]


def _source_trt_references() -> set[tuple[str, str | None]]:
    refs = set()
    for path in SOURCES:
        for owner, member in re.findall(r"\btrt\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", path.read_text()):
            refs.add((owner, member or None))
    return refs


def test_tables_cover_every_trt_reference_in_the_source():
    declared = {owner: set(REQUIRED_API.get(owner, ())) | set(OPTIONAL_API.get(owner, ()))
                for owner in set(REQUIRED_API) | set(OPTIONAL_API)}
    undeclared = [f"trt.{o}" + (f".{m}" if m else "") for o, m in _source_trt_references()
                  if o not in declared["module"] or (m and m != "__members__" and m not in declared.get(o, ()))]
    assert undeclared == []


def test_every_declared_name_is_used_by_the_source():
    text = "".join(p.read_text() for p in SOURCES)
    unused = [f"{owner}.{name}" for table in (REQUIRED_API, OPTIONAL_API) for owner, names in table.items()
              for name in names if not re.search(rf"[.\"']{re.escape(name)}\b", text)]
    assert unused == []


def test_pinned_layer_types_are_declared():
    assert set(to_tensorrt.FP32_LAYER_TYPES) <= set(REQUIRED_API["LayerType"])


if __name__ == "__main__" and sys.argv[1:] == ["--write-snapshot"]:
    data = {}
    for v in VERSIONS:
        result = probe(v)
        data[v] = {k: result[k] for k in ("surface", "enums")}
    SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
