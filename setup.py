"""The `nicegan` distribution: one import package, `nicegan`, whose folders are the repository root's
(`trainer/` is `nicegan.trainer`, `cli.py` is `nicegan.cli`, ...). pyproject.toml names the build
backend (setuptools >= 64, for editable installs of this mapping)."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT_PACKAGE = "nicegan"
SUBPACKAGES = ["trainer", "models", "models.nicegan", "models.cyclegan", "models.tunit", "evaluation", "datasets", "export", "runtime",
               "runtime.backends"]


class BuildPy(build_py):
    """The root folder is the `nicegan` package: leave this file out of it (nicegan/setup.py)."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if (m[0], m[1]) != (ROOT_PACKAGE, "setup")]

setup(
    name="nicegan",
    version="0.2.0",
    description="NICE-GAN unpaired image-to-image translation: training, ONNX/TensorRT export, video runtime",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",  # JetPack 5 ships Python 3.8
    package_dir={ROOT_PACKAGE: "."},
    packages=[ROOT_PACKAGE] + [f"{ROOT_PACKAGE}.{name}" for name in SUBPACKAGES],
    # Explicit data only: with the root as the package, include_package_data would ship the whole
    # source tree (docs, tests, benchmarks).
    include_package_data=False,
    package_data={f"{ROOT_PACKAGE}.runtime": ["assets/*.*", "assets/models/*.onnx"]},
    install_requires=[
        # >=2.1 admits the local 2.13.0 CPU wheel; CI installs that pin first so pip resolves nothing.
        "torch>=2.1",
        "numpy",
        "Pillow>=9",            # nicegan train: the official data pipeline's image loading and resizing
        "onnx>=1.15",
        "onnxsim>=0.4.33",
        "onnxruntime>=1.16",    # CUDA (onnxruntime-gpu) and platforms without OpenVINO wheels
        # The CPU runtime where it has wheels: bf16 on AMX / AVX512_BF16, several requests in flight.
        "openvino>=2024.2; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
        "opencv-python>=4.8",
        # an ffmpeg executable (wheels for x86-64 and ARM64): --codec h264, the input's audio, and an
        # interrupted video resumed where it stopped (its parts joined without re-encoding)
        "imageio-ffmpeg>=0.4.5",
        "click>=8.0",
        "tqdm>=4.60",
        "scipy>=1.10",          # nicegan eval: sqrtm for FID, the Gaussian window of SSIM
    ],
    extras_require={
        "tensorrt": ["tensorrt", "pycuda"],
        "data": ["scikit-image>=0.21"],   # nicegan data: the photos of the offline dataset
        "ray": ["ray[data]>=2.51; python_version >= '3.10'"],   # translate --engine ray (docs/SCALE.md)
        # wheel: the packaging test builds the wheel without build isolation (no download)
        "test": ["pytest>=7", "scikit-image>=0.21", "wheel"],
    },
    entry_points={"console_scripts": ["nicegan=nicegan.cli:main"]},
    cmdclass={"build_py": BuildPy},
)
