"""The official pool of generated images (junyanz `util/image_pool.py`), as training state.

The discriminators see a history of fakes rather than only the latest ones: until the pool holds
`size` images every fake is stored and returned; after that, each fake is returned as it is or,
with probability 1/2, swapped for a random stored one, which it replaces. The draws come from
Python's `random`, as in the official code, so a seeded run draws the same swaps. Unlike the
official pool, this one is saved with the checkpoint (`state_dict`), so a resumed run continues
with the same history.
"""
from __future__ import annotations

import random

import torch


class ImagePool:
    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """The batch the discriminator sees in place of `images` (detached, float32)."""
        if self.size == 0:
            return images.detach()
        returned = []
        for image in images.detach().float():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.size - 1)  # inclusive, as the official draw
                returned.append(self.images[index].clone())
                self.images[index] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        images = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.images = list(state["images"].to(device).split(1)) if state["images"].numel() else []
