from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="nicegan",
    version="0.1.0",
    description="NICE-GAN unpaired image-to-image translation: training, ONNX/TensorRT export, video runtime",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["trainer", "trainer.*", "export", "export.*", "runtime", "runtime.*"]),
    py_modules=["cli"],
    include_package_data=True,
    package_data={"runtime": ["assets/*", "assets/**/*"]},
    install_requires=[
        # >=2.1 admits the local 2.13.0 CPU wheel; CI installs that pin first so pip resolves nothing.
        "torch>=2.1",
        "numpy",
        "onnx>=1.15",
        "onnxsim>=0.4.33",
        "onnxruntime>=1.16",
        "opencv-python>=4.8",
        "click>=8.0",
        "tqdm>=4.60",
        "scipy>=1.10",  # nicegan eval: sqrtm for FID, the Gaussian window of SSIM
    ],
    extras_require={
        "tensorrt": ["tensorrt", "pycuda"],
        "test": ["pytest>=7", "scikit-image>=0.21", "scipy>=1.10"],
    },
    entry_points={"console_scripts": ["nicegan=cli:cli"]},
)
