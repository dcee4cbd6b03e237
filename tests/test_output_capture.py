import copy
import pickle

import torch
from torch import nn

from gandiag.output_capture import InertHook, OutputTap, SwitchableHook


def test_switching_takes_the_hook_out_and_puts_it_back_last():
    D = nn.Linear(2, 1)
    calls = []
    hook = SwitchableHook(D, lambda m, a, k, o: calls.append("ours"))
    D.register_forward_hook(lambda m, a, o: calls.append("user's"))
    D(torch.zeros(1, 2))
    hook.switch(False)
    D(torch.zeros(1, 2))
    hook.switch(True)  # back, after the user's hook
    D(torch.zeros(1, 2))
    hook.switch(True)  # on already: stays last
    D(torch.zeros(1, 2))
    assert calls == ["ours", "user's", "user's", "user's", "ours", "user's", "ours"]
    hook.remove()
    assert len(D._forward_hooks) == 1 and len(D._forward_hooks_with_kwargs) == 0


def test_the_tap_keeps_outputs_on_inputs_that_carry_a_gradient_only():
    D, tap = nn.Linear(2, 1), OutputTap()
    D.register_forward_hook(tap, with_kwargs=True)
    fake = torch.randn(4, 2, requires_grad=True)
    D(torch.randn(4, 2))            # real data
    D(fake.detach())                # detached fakes
    with torch.no_grad():
        D(fake)                     # an evaluation
    out = D(fake)
    assert tap.single == [out] and out.retains_grad
    assert tap.take(out) == [out] and not tap.single


def _kept(tap, fake_out):
    return [id(t) for t in tap.take(fake_out)]


def test_the_tap_counts_the_place_of_the_score_passed_as_fake_out():
    fake = torch.randn(4, 2, requires_grad=True)
    score, cls = fake.sum(1), fake * 3
    tap = OutputTap()
    tap(None, ([fake],), {}, {"score": score, "cls": cls})
    assert [pl for pl, _ in tap.parts] == [("score",), ("cls",)]
    assert _kept(tap, score.view(-1)) == [id(score)]  # a view of the score counts as the score
    # A shared head: the score is itself a view, and fake_out a view of that view.
    both = fake @ torch.ones(2, 2)
    tap(None, (fake,), {}, (both[:, :1], both[:, 1:]))
    first = tap.parts[0][1]
    assert _kept(tap, first.view(-1)) == [id(first)]
    both2 = fake @ torch.ones(2, 2)
    tap(None, (fake,), {}, (both2[:, :1], both2[:, 1:]))
    second = tap.parts[1][1]
    assert _kept(tap, second.reshape(-1)) == [id(second)]  # the other half of the head, not the score


def test_the_score_place_is_learned_and_found_by_shape_for_micro_batches():
    fake = torch.randn(8, 2, requires_grad=True)
    tap = OutputTap()
    halves = []
    for half in (fake[:4], fake[4:]):  # two micro-batches through a D returning (score, cls)
        score, cls = half.sum(1), half * 3
        tap(None, (half,), {}, (score, cls))
        halves.append(score)
    # The concatenation of the scores is none of D's outputs: its shape tells the place.
    assert _kept(tap, torch.cat(halves)) == [id(h) for h in halves]
    # Next step: only the last micro-batch's score is passed; the learned place counts both.
    again = []
    for half in (fake[:4], fake[4:]):
        score = half.sum(1)
        tap(None, (half,), {}, (score, half * 3))
        again.append(score)
    assert _kept(tap, again[-1]) == [id(h) for h in again]


def test_an_ambiguous_container_output_counts_nothing():
    fake = torch.randn(4, 2, requires_grad=True)
    tap = OutputTap()
    tap(None, (fake,), {}, (fake.sum(1), fake.prod(1)))  # two places of one shape
    assert tap.take(torch.zeros(4)) == [] and not tap.parts


def test_copies_of_the_tap_are_inert():
    tap = OutputTap()
    for copied in (copy.deepcopy(tap), pickle.loads(pickle.dumps(tap))):
        assert isinstance(copied, InertHook)
        assert copied(None, (torch.ones(1, requires_grad=True),), {}, torch.ones(1, requires_grad=True)) is None
