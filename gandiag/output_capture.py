"""How the Monitor captures the gradient that reaches D's output in G's step.

The signal a GAN's generator gets is ``dL_G / dD(G(z))``: it is gone once the
user's backward has run, so a forward hook on D marks D's outputs on G's fakes
with ``retain_grad()`` and :class:`gandiag.Monitor` reads their ``.grad`` at
``generator_step``. The hook is on only from a D step to the next G step.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor, nn

# Where torch 2.x keeps a module's forward hooks registered with kwargs.
HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs")


class SwitchableHook:
    """A forward hook (with kwargs) that can be switched off and on for the price
    of two dict operations.

    Registering and removing a hook on every step cost ~25 us per step in a
    small CPU loop, more than anything else the Monitor does per step but the
    gradient norms. The hook is registered once; off/on take its entry out of
    the module's hook dicts and put it back. Should a torch version keep hooks
    elsewhere, the entry is not found and the hook just stays on, which costs
    time but records the same: D-step forwards are cleared at each D step.
    """

    def __init__(self, module: nn.Module, fn: Callable):
        self._handle = module.register_forward_hook(fn, with_kwargs=True)
        key = self._handle.id
        dicts = [getattr(module, name, None) for name in HOOK_DICTS]
        self._entries = [(d, key, d[key]) for d in dicts if isinstance(d, dict) and key in d]
        self._switchable = len(self._entries) == len(dicts)
        self.on = True

    def switch(self, on: bool) -> None:
        if not self._switchable:
            return
        if on:
            # Put it back last, also when it is on already: a hook the user added
            # after the Monitor may change D's output, and G's loss sees the result.
            for d, key, value in self._entries:
                d.pop(key, None)
                d[key] = value
        elif self.on:
            for d, key, _ in self._entries:
                del d[key]
        self.on = on

    def remove(self) -> None:
        self.switch(True)  # so that the handle finds its entries
        self._handle.remove()


class OutputTap:
    """The forward hook on D: keeps the gradient of D's outputs on G's fakes.

    Only a forward whose input carries a gradient path (G's fakes, also inside
    a list or dict) can send G a signal; forwards on real data or detached fakes
    are skipped. The output's gradient is kept with ``retain_grad()``, not a
    Python tensor hook, so the user's backward never calls back into Python.

    A D that returns a tuple, list or dict (an auxiliary classifier's logits
    next to its score, say) has each of its tensors kept with its place in the
    output (``0``, ``"score"``, ...). :meth:`take` counts the place of the
    score: the one whose tensor is ``fake_out`` or a view of the same elements;
    else the place found at an earlier step; else the one place whose tensors
    add up to ``fake_out``'s shape (``fake_out`` the concatenation of
    micro-batches' scores). Every forward's tensor at that place counts, as
    all forwards count for a D that returns a tensor.

    It holds no reference to the Monitor: a copy of D (``copy.deepcopy`` for an
    EMA, or pickling it with ``torch.save``) gets an inert hook in its place
    instead of trying to copy the Monitor and its open files.
    """

    def __init__(self):
        self.single: list[Tensor] = []                # tensor outputs: all count
        self.parts: list[tuple[tuple, Tensor]] = []   # (place, tensor) of container outputs
        self._score_place: tuple | None = None

    def __call__(self, module, args, kwargs, out):
        if not (torch.is_grad_enabled() and (_carries_grad(args) or _carries_grad(kwargs.values()))):
            return
        if isinstance(out, Tensor):
            if out.requires_grad:
                out.retain_grad()
                self.single.append(out)
            return
        for place, o in _places(out, ()):
            if o.requires_grad:
                o.retain_grad()
                self.parts.append((place, o))

    def take(self, fake_out: Tensor) -> list[Tensor]:
        """The kept outputs that count for a G step whose D output is ``fake_out``; clears them."""
        taken = list(self.single)
        if self.parts:
            place = next((pl for pl, o in self.parts if _same_elements(o, fake_out)), None)
            if place is None:
                place = self._score_place if self._score_place is not None else self._place_by_shape(fake_out)
            if place is not None:
                self._score_place = place
                taken += [o for pl, o in self.parts if pl == place]
        self.clear()
        return taken

    def _place_by_shape(self, fake_out: Tensor) -> tuple | None:
        sizes: dict[tuple, int] = {}
        for place, o in self.parts:
            if o.shape[1:] == fake_out.shape[1:]:
                sizes[place] = sizes.get(place, 0) + o.numel()
        fits = [pl for pl, n in sizes.items() if n == fake_out.numel()]
        return fits[0] if len(fits) == 1 else None

    def clear(self) -> None:
        self.single.clear()
        self.parts.clear()

    def __deepcopy__(self, memo):
        return InertHook()

    def __reduce__(self):
        return InertHook, ()


class InertHook:
    """What a copy of D carries in place of the Monitor's hook: does nothing."""

    def __call__(self, module, args, kwargs, out):
        return None


def _carries_grad(values) -> bool:
    for v in values:
        if isinstance(v, Tensor):
            if v.requires_grad:
                return True
        elif isinstance(v, (list, tuple)):
            if _carries_grad(v):
                return True
        elif isinstance(v, Mapping) and _carries_grad(v.values()):
            return True
    return False


def _places(out, place: tuple) -> list[tuple[tuple, Tensor]]:
    """``(place, tensor)`` for each tensor in a nest of tuples, lists and dicts."""
    if isinstance(out, Tensor):
        return [(place, out)]
    if isinstance(out, Mapping):
        items = out.items()
    elif isinstance(out, (list, tuple)):
        items = enumerate(out)
    else:
        return []
    return [found for key, o in items for found in _places(o, (*place, key))]


def _same_elements(a: Tensor, b: Tensor) -> bool:
    """Whether ``b`` is ``a`` or a view of exactly its elements (``a.view(-1)``, say)."""
    if a is b:
        return True
    root_a = a._base if a._base is not None else a
    root_b = b._base if b._base is not None else b
    return root_a is root_b and a.data_ptr() == b.data_ptr() and a.numel() == b.numel()
