"""Device memory for the TensorRT backend: pycuda page-locked host buffers, device buffers, one stream.

Any object with the same methods can stand in for `PycudaMemory` (tests use a NumPy one).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from nicegan.export.to_tensorrt import PYCUDA_HINT, GpuIdentity
from nicegan.runtime.backends.base import BackendError


class PycudaMemory:
    """The device's primary context (shared with TensorRT and torch), a real stream, raw byte buffers."""

    def __init__(self, device: int = 0):
        try:
            import pycuda.driver as cuda
        except ImportError as exc:
            raise BackendError(f"pycuda is not available ({exc}); {PYCUDA_HINT}") from None
        try:
            context = _primary_context(device)
        except Exception as exc:  # pycuda raises its own Error, or RuntimeError when no device answers
            raise BackendError(f"no usable CUDA device {device} ({exc})") from None
        self._cuda = cuda
        self._context = context
        self.stream = cuda.Stream()
        dev = context.get_device()
        major, minor = dev.compute_capability()
        self.gpu = GpuIdentity(dev.name(), f"{major}.{minor}")

    @property
    def stream_handle(self) -> int:
        return self.stream.handle

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make the context current in the calling thread (the runtime infers from a worker thread)."""
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def host_empty(self, nbytes: int) -> np.ndarray:
        return self._cuda.pagelocked_empty(nbytes, np.uint8)

    def device_alloc(self, nbytes: int) -> Any:
        return self._cuda.mem_alloc(nbytes)

    def address(self, allocation: Any) -> int:
        return int(allocation)

    def htod(self, allocation: Any, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(allocation, host, self.stream)

    def dtoh(self, host: np.ndarray, allocation: Any) -> None:
        self._cuda.memcpy_dtoh_async(host, allocation, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, allocation: Any) -> None:
        allocation.free()


def _primary_context(device: int) -> Any:
    """The device's primary context, pushed on this thread."""
    if device == 0:
        # autoprimaryctx, not autoinit: autoinit creates a second context that clashes with TensorRT's
        import pycuda.autoprimaryctx
        return pycuda.autoprimaryctx.context
    import pycuda.driver as cuda
    cuda.init()
    context = cuda.Device(device).retain_primary_context()
    context.push()
    return context


class Staging:
    """A host buffer and a device buffer of equal capacity, reallocated only when a larger one is needed."""

    def __init__(self, memory: Any):
        self.memory = memory
        self.capacity = 0
        self.allocations = 0
        self._host: np.ndarray | None = None
        self._device: Any = None

    def ensure(self, nbytes: int) -> tuple[np.ndarray, Any]:
        """(host bytes view of length nbytes, device allocation)."""
        if nbytes > self.capacity:
            self.release()
            self._host = self.memory.host_empty(nbytes)
            self._device = self.memory.device_alloc(nbytes)
            self.capacity = nbytes
            self.allocations += 1
        return self._host[:nbytes], self._device

    def release(self) -> None:
        if self._device is not None:
            self.memory.free(self._device)
        self._host, self._device, self.capacity = None, None, 0
