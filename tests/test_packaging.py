"""The distribution: one import package with its assets, declared dependencies, absolute imports,
and a runtime that works without torch (the documented Jetson install)."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import cv2
import pytest

from runtime_fixtures import photo

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("trainer", "models", "evaluation", "datasets", "export", "runtime")
ROOT_MODULES = ("__init__.py", "cli.py", "common.py", "errors.py")
SUBPACKAGE_NAMES = {*PACKAGE_DIRS, "cli", "common", "errors"}
# Imported inside the function that needs them, each with a one-line install hint where it is used.
OPTIONAL = {
    "tensorrt": "nicegan[tensorrt] / JetPack (export trt, .engine models)",
    "pycuda": "nicegan[tensorrt] (the TensorRT backend's device memory)",
    "skimage": "nicegan[data] (nicegan data's photos; export parity falls back to random images)",
    "imageio_ffmpeg": "an ffmpeg executable for --codec h264 and --audio copy (PATH first)",
    "ray": "nicegan[ray] (translate --engine ray)",
}


def python_files(*roots: Path) -> list[Path]:
    skip = {".cache", "build", "dist", ".git"}
    return [p for root in roots for p in sorted(root.rglob("*.py")) if not skip & set(p.relative_to(REPO).parts)]


def package_modules() -> list[Path]:
    return [REPO / name for name in ROOT_MODULES] + python_files(*(REPO / d for d in PACKAGE_DIRS))


def imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level names imported at module level (run at import time) and inside functions."""
    at_import, in_functions = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            (in_functions if in_function else at_import).update(n.split(".")[0] for n in names)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return at_import, in_functions


def third_party(names: set[str]) -> set[str]:
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("nicegan", "__future__")}


def declared_distributions() -> set[str]:
    """install_requires of the installed nicegan, extras excluded, names normalised."""
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in requires("nicegan") or [] if "extra ==" not in r}


def test_code_imports_only_through_the_nicegan_package():
    """`import trainer` would pick up whatever top-level `trainer` is installed (the PyPI package of
    that name overwrote ours), or a stray ./cli.py: every import of our code is `nicegan.…`."""
    bare = re.compile(rf"^\s*(?:from|import)\s+(?:{'|'.join(sorted(SUBPACKAGE_NAMES))})\b", re.M)
    offenders = [f"{p.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}"
                 for p in python_files(REPO) for text in [p.read_text(encoding="utf-8")]
                 for m in bare.finditer(text)]
    assert offenders == []


def test_every_module_level_import_is_a_declared_dependency():
    distributions = packages_distributions()
    declared = declared_distributions()
    undeclared = []
    for path in package_modules():
        at_import, in_functions = imports(path)
        for module in sorted(third_party(at_import)):
            dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            if not dists & declared:
                undeclared.append(f"{path.relative_to(REPO)} imports {module} ({', '.join(sorted(dists))})")
        for module in sorted(third_party(in_functions) - third_party(at_import)):
            dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            if not dists & declared and module not in OPTIONAL:
                undeclared.append(f"{path.relative_to(REPO)} imports {module} lazily without a hint")
    assert undeclared == []
    assert "pillow" in declared   # nicegan train and eval read images with PIL


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the source tree: setuptools builds in place, and a stale build/ of an
    earlier layout would leak old files into the wheel."""
    source, out = tmp_path_factory.mktemp("source") / "nicegan", tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".cache", "build", "dist", "*.egg-info",
                                                                "__pycache__", "nicegan_demo", ".pytest_cache"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(out.glob("nicegan-*.whl"))


def test_the_wheel_installs_one_name_with_the_bundled_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"nicegan"}
    assert {f"nicegan/{module}" for module in ROOT_MODULES} <= set(names)
    assert {f"nicegan/{name}/__init__.py" for name in PACKAGE_DIRS} <= set(names)
    assert {"nicegan/trainer/loop.py", "nicegan/export/to_onnx.py", "nicegan/runtime/backends/base.py"} <= set(names)
    for asset in ("models/vintage_a2b.onnx", "models/vintage_a2b_fp16.onnx", "bigbuckbunny_320x180.mp4",
                  "astronaut.jpg", "ATTRIBUTION.md"):
        assert f"nicegan/runtime/assets/{asset}" in names
    assert not [n for n in names if n.startswith(("nicegan/tests/", "nicegan/docs/", "nicegan/benchmarks/"))
                or n == "nicegan/setup.py"]
    info = zipfile.ZipFile(wheel)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert info.read(f"{dist_info}/top_level.txt").decode().split() == ["nicegan"]
    assert "nicegan = nicegan.cli:main" in info.read(f"{dist_info}/entry_points.txt").decode()


def test_the_installed_wheel_runs_from_any_folder(wheel, tmp_path):
    """Non-editable: the package, its bundled model, `python -m nicegan.cli`; no top-level `trainer`."""
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (tmp_path / "cli.py").write_text("raise SystemExit('the stray ./cli.py ran')\n")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    check = ("import importlib.util, json, nicegan, nicegan.runtime.demo as d; print(json.dumps("
             "[nicegan.__file__, d.DEFAULT_MODEL.is_file(), importlib.util.find_spec('trainer') is None]))")
    shown = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    location, has_model, no_trainer = json.loads(shown.stdout)
    assert Path(location).is_relative_to(target) and has_model and no_trainer
    helped = subprocess.run([sys.executable, "-m", "nicegan.cli", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "translate" in helped.stdout, helped.stderr


# --- the runtime without torch ---------------------------------------------------------------

# A finder in front of all others: importing a blocked package fails, and importlib.util.find_spec
# finds nothing, as if it were not installed.
WITHOUT = '''
import importlib.util, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocked())
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: (
    None if name.split(".")[0] in BLOCKED else _find_spec(name, package))
sys.argv = ["nicegan"] + sys.argv[2:]
from nicegan.cli import main
main()
'''
JETSON_MISSING = "torch,torchvision,scipy,PIL,onnxsim,skimage,tensorrt,pycuda,openvino"   # the --no-deps install


def nicegan_without(missing: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT, missing, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 1 and one `Error:` line, the last one (a `backend: ...` line may come first)."""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert done.returncode == 1 and errors == lines[-1:], done.stderr
    assert "Traceback" not in done.stderr and "No module named 'torch'" not in done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_onnx) -> Path:
    """An engine file and the sidecar `nicegan export trt` writes beside it (the plan is never read here)."""
    folder = tmp_path_factory.mktemp("engine")
    path = folder / "tiny.engine"
    path.write_bytes(b"serialized plan")
    (folder / "tiny.engine.json").write_text(json.dumps({
        "model": {"arch": "nicegan", "io": "uint8", "light": True, "img_size": 64, "precision": "fp16"},
        "tensorrt": {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "recipe": "strongly-typed"}}))
    return path


def test_translate_info_and_bench_run_without_torch(tiny_onnx, engine, tmp_path):
    cv2.imwrite(str(tmp_path / "photo.png"), photo("coffee", 40, 56))
    done = nicegan_without(JETSON_MISSING, "translate", tmp_path / "photo.png", tmp_path / "out.png", "-m",
                           tiny_onnx, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape == (40, 56, 3)
    info = nicegan_without(JETSON_MISSING, "info", tiny_onnx, cwd=tmp_path)
    assert info.returncode == 0 and "backend: onnxruntime" in info.stdout and "io: uint8" in info.stdout, info.stderr
    info = nicegan_without(JETSON_MISSING, "info", engine, cwd=tmp_path)
    assert info.returncode == 0 and "backend: tensorrt" in info.stdout and "compute_capability: 8.7" in info.stdout
    bench = nicegan_without(JETSON_MISSING, "bench", "-m", tiny_onnx, "--batch-sizes", "1", "--sizes", "32x32",
                            "--warmup", "0", "--runs", "1", cwd=tmp_path)
    assert bench.returncode == 0 and "32x32" in bench.stdout, bench.stderr


def test_user_errors_without_torch_are_one_line(tiny_onnx, engine, tmp_path):
    cv2.imwrite(str(tmp_path / "photo.png"), photo("coffee", 40, 56))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage that is not a protobuf" * 20)
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"PK\x03\x04 some bytes")
    cases = [
        (["translate", tmp_path / "photo.png", "-m", tmp_path / "missing.onnx"], ["model not found", "missing.onnx"]),
        (["translate", tmp_path / "missing.png", "-m", tiny_onnx], ["input not found", "missing.png"]),
        (["translate", tmp_path / "photo.png", "-m", engine], ["TensorRT is not available", "nicegan[tensorrt]"]),
        (["translate", tmp_path / "photo.png", "-m", checkpoint], ["model.pt", "pip install torch"]),
        (["info", corrupt], ["corrupt.onnx: not a readable ONNX model", "nicegan export onnx"]),
        (["info", checkpoint], ["model.pt", "torch"]),
        (["bench", "-m", tiny_onnx, "--batch-sizes", "x"], []),
    ]
    for args, needles in cases:
        done = nicegan_without(JETSON_MISSING, *args, cwd=tmp_path)
        if args[0] == "bench":   # click's own usage error: two lines (usage, then the message)
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
            continue
        one_line_error(done, *needles)


def test_corrupt_models_are_one_line_with_torch_too(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bytes(range(256)) * 4)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(255, -1, -1)) * 16)
    for model, needles in ((corrupt, ["not a readable ONNX model"]), (noise, ["noise.pt", "not a PyTorch checkpoint"])):
        done = nicegan_without("nothing", "info", model, cwd=tmp_path)
        one_line_error(done, *needles)
        assert "weights_only=False" not in done.stderr
