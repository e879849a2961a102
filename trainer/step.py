"""What every architecture's training step shares: a generator and a discriminator optimizer,
autocast, fp16 loss scaling, the gradient synchronisation of multi-process runs, and frozen
parameters. An architecture's step (nicegan.models.*.step) subclasses GanStep and writes only its
losses and their order."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch

from nicegan.trainer.options import AMP_MODES, TrainError

AMP_DTYPES = dict(zip(AMP_MODES, (None, torch.bfloat16, torch.float16)))  # off, bf16, fp16

GradSync = Callable[[list[torch.nn.Parameter]], None]


def set_learning_rate(optimizers: Iterable[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr


@contextmanager
def frozen(params: list[torch.nn.Parameter]) -> Iterator[None]:
    """Parameters excluded from autograd: gradients flow through the modules but not into them."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class GanStep:
    """The shared part of one iteration; `grad_sync(params)` (multi-process) runs between backward
    and optimizer step."""

    def __init__(self, g_optim: torch.optim.Optimizer, d_optim: torch.optim.Optimizer, amp: str = "off",
                 device: torch.device | str = "cpu", grad_sync: GradSync | None = None):
        if amp not in AMP_DTYPES:
            raise TrainError(f"--amp must be one of {', '.join(AMP_DTYPES)} (got {amp!r})")
        self.g_optim, self.d_optim = g_optim, d_optim
        self.device = torch.device(device)
        self.amp_dtype = AMP_DTYPES[amp]
        # fp16 needs loss scaling; one scaler per optimizer because the two losses are independent.
        self.d_scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.g_scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.grad_sync = grad_sync

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        return self.g_optim, self.d_optim

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def apply_loss(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: list[torch.nn.Parameter]) -> None:
        scaler.scale(loss).backward()  # a disabled scaler returns the loss unchanged
        if self.grad_sync is not None:
            self.grad_sync(params)
        scaler.step(optimizer)
        scaler.update()

    def scaler_state(self) -> dict[str, Any]:
        """The enabled loss scalers' states, for the checkpoint's train_state."""
        scalers = {"d_scaler": self.d_scaler, "g_scaler": self.g_scaler}
        return {key: scaler.state_dict() for key, scaler in scalers.items() if scaler.is_enabled()}

    def load_scaler_state(self, train_state: dict[str, Any]) -> None:
        for key, scaler in (("d_scaler", self.d_scaler), ("g_scaler", self.g_scaler)):
            if train_state.get(key) and scaler.is_enabled():
                scaler.load_state_dict(train_state[key])
