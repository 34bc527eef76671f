"""Per-frame augmentation as the original's torchvision pipeline did it, batched.

The original applied `ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)` and
`RandomHorizontalFlip()` to every PIL frame on its own: each frame draws the order of the three
adjustments (a random permutation), a factor uniform in [0.7, 1.3] for each, and a coin for the
flip. PIL's enhancers blend the 8-bit image with a "degenerate" image (black for brightness,
the mean grey level for contrast, the grey version for saturation) in float32 and truncate each
result to uint8, so every adjustment is quantised before the next. We restate that arithmetic
on tensors of integer values 0..255 (N, 3, H, W); the test compares it with Pillow itself.
"""
from __future__ import annotations

import torch

# PIL's RGB -> L conversion in 16-bit fixed point: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
_L_WEIGHTS = (19595, 38470, 7471)
BRIGHTNESS, CONTRAST, SATURATION = 0, 1, 2


def pil_grey(x: torch.Tensor) -> torch.Tensor:
    """PIL's `convert("L")` of integer-valued RGB (N, 3, H, W) -> (N, 1, H, W) integers."""
    r, g, b = x.to(torch.int64).unbind(dim=1)
    grey = (r * _L_WEIGHTS[0] + g * _L_WEIGHTS[1] + b * _L_WEIGHTS[2] + 0x8000) >> 16
    return grey.unsqueeze(1).to(x.dtype)


def pil_blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's `Image.blend(degenerate, image, factor)` on uint8 values: float32, clipped, truncated."""
    factor = factor.to(torch.float32).view(-1, 1, 1, 1)
    out = degenerate + factor * (image - degenerate)
    return out.clamp(0.0, 255.0).floor()


def adjust(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """One of PIL's ImageEnhance adjustments (Brightness, Contrast, Color) per frame."""
    if op == BRIGHTNESS:
        return pil_blend(torch.zeros_like(x), x, factor)
    grey = pil_grey(x)
    if op == CONTRAST:  # degenerate: the frame's mean grey level, rounded, as a flat image
        mean = torch.floor(grey.to(torch.float64).mean(dim=(1, 2, 3), keepdim=True) + 0.5).to(x.dtype)
        return pil_blend(mean.expand_as(x), x, factor)
    return pil_blend(grey.expand_as(x), x, factor)


def jitter_frames(x: torch.Tensor, amounts: tuple[float, float, float], generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Colour jitter per frame of integer-valued float32 RGB (N, 3, H, W) in 0..255.

    `amounts` = (brightness, contrast, saturation); an amount of 0 skips that adjustment.
    """
    n = x.shape[0]
    order = torch.argsort(torch.rand(n, 3, generator=generator), dim=1)  # a random permutation per frame
    factors = torch.stack([1.0 + (torch.rand(n, generator=generator) * 2.0 - 1.0) * a for a in amounts], dim=1)
    order, factors = order.to(x.device), factors.to(x.device)
    x = x.clone()
    for position in range(3):
        for op, amount in enumerate(amounts):
            if amount <= 0:
                continue
            chosen = (order[:, position] == op).nonzero().flatten()
            if len(chosen):
                x[chosen] = adjust(x[chosen], op, factors[chosen, op])
    return x


def flip_frames(x: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each frame of (N, 3, H, W) with probability `prob`, drawn per frame."""
    flip = (torch.rand(x.shape[0], generator=generator) < prob).to(x.device)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
