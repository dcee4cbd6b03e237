"""What the Monitor reads from one network's parameters at each step.

A "layer" is the module that owns a parameter (``net.0.weight`` and
``net.0.bias`` make layer ``net.0``). Reads stay on the device and are not
reduced: the caller batches the reductions of many steps and decides when to
move numbers to the host.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class GradNorms:
    """Per-parameter L2 gradient norms of one network, in one fused ``_foreach_norm``.

    The parameter list and the layer grouping are fixed at construction.

    Example:
        >>> norms = GradNorms(model)
        >>> loss.backward()
        >>> per_param, has_grad = norms.read()   # list of 0-d tensors, bool
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
        self.index = index  # the layer of each parameter, as positions in ``layers``
        self._zeros: dict[torch.device, Tensor] = {}

    def has_grad(self) -> bool:
        """Whether any parameter holds a gradient (a host-side check, no sync)."""
        return any(p.grad is not None for p in self.params)

    def read(self) -> tuple[list[Tensor], bool]:
        """``(norms, has_grad)``: the L2 norm of each parameter's ``.grad`` (0 where
        there is none) as 0-d device tensors, and whether any parameter had one."""
        grads = []
        missing = 0
        for p in self.params:
            g = p.grad
            if g is None:
                missing += 1
                g = self._zeros.get(p.device)
                if g is None:
                    g = self._zeros[p.device] = torch.zeros((), device=p.device)
            elif g.requires_grad:  # a backward with create_graph=True
                g = g.detach()
            grads.append(g)
        return torch._foreach_norm(grads), missing < len(grads)

    def fingerprint(self) -> list[Tensor]:
        """Per-tensor norms of the weights: any optimizer step of realistic size changes them."""
        with torch.no_grad():
            return torch._foreach_norm(self.params)
