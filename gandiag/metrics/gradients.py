"""Gradient norms of a network, per layer and in total, in one fused reduction.

A "layer" is the module that owns a parameter (``net.0.weight`` and
``net.0.bias`` make layer ``net.0``). Everything stays on the device: the
caller decides when to move numbers to the host.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class GradNorms:
    """Computes L2 gradient norms of one network's parameters.

    The parameter list and the layer grouping are fixed at construction, so a
    step costs one ``_foreach_norm`` and one ``index_add_``.

    Example:
        >>> norms = GradNorms(model)
        >>> loss.backward()
        >>> total, per_layer = norms()   # 0-d tensor, [n_layers] tensor
    """

    def __init__(self, module: nn.Module):
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError(f"Expected a module with trainable parameters but {type(module).__name__} has none")
        self.params = [p for _, p in named]
        layers: list[str] = []
        index = []
        for name, _ in named:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            if layer not in layers:
                layers.append(layer)
            index.append(layers.index(layer))
        self.layers = layers
        self._index_cpu = torch.tensor(index, dtype=torch.long)
        self._index: Tensor | None = None
        self._zeros: dict[torch.device, Tensor] = {}

    def has_grad(self) -> bool:
        """Whether any parameter holds a gradient (a host-side check, no sync)."""
        return any(p.grad is not None for p in self.params)

    def __call__(self, scale: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(total, per_layer)`` norms, divided by ``scale`` when given
        (a GradScaler's scale, so norms are reported unscaled)."""
        device = self.params[0].device
        grads = []
        for p in self.params:
            if p.grad is None:
                z = self._zeros.get(device)
                if z is None:
                    z = self._zeros[device] = torch.zeros((), device=device)
                grads.append(z)
            else:
                grads.append(p.grad.detach())
        per_param = torch.stack(torch._foreach_norm(grads)).float()
        if self._index is None or self._index.device != per_param.device:
            self._index = self._index_cpu.to(per_param.device)
        sq = per_param.square()
        per_layer = torch.zeros(len(self.layers), device=per_param.device).index_add_(0, self._index, sq).sqrt()
        total = sq.sum().sqrt()
        if scale is not None:
            total = total / scale
            per_layer = per_layer / scale
        return total, per_layer
