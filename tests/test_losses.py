import math

import pytest
import torch

from gandiag.losses import LOSSES, LossVariant, get_loss, gradient_penalty, register_loss

LOGITS = torch.linspace(-30, 30, 61, dtype=torch.float64)


def _dgl(name, logits=LOGITS):
    l = logits.clone().requires_grad_(True)
    # sum of per-sample losses: undo the mean so each element's derivative is per-sample
    (LOSSES[name].g_loss(l, l.detach()) * l.numel()).backward()
    return l.grad


def test_all_eight_variants_registered():
    assert set(LOSSES) == {"minimax", "nonsaturating", "flipped", "wgan", "wgan-gp", "hinge", "lsgan", "rsgan"}


def test_minimax_generator_derivative_is_minus_sigmoid():
    assert torch.allclose(_dgl("minimax"), -torch.sigmoid(LOGITS), atol=1e-12)


def test_nonsaturating_generator_derivative_is_minus_one_minus_sigmoid():
    assert torch.allclose(_dgl("nonsaturating"), -(1 - torch.sigmoid(LOGITS)), atol=1e-12)


def test_minimax_saturates_where_nonsaturating_stays_strong():
    # D confidently rejects the fakes: logit -10, D(G(z)) ~ 4.5e-5
    l = torch.tensor([-10.0], dtype=torch.float64)
    assert abs(_dgl("minimax", l).item()) < 1e-4
    assert abs(_dgl("nonsaturating", l).item()) > 0.999


def test_flipped_and_nonsaturating_give_identical_generator_gradients():
    assert torch.allclose(_dgl("flipped"), _dgl("nonsaturating"), atol=1e-12)
    torch.manual_seed(0)
    G = torch.nn.Linear(3, 2)
    D = torch.nn.Linear(2, 1)
    z = torch.randn(16, 3)
    grads = {}
    for name in ("flipped", "nonsaturating"):
        G.zero_grad()
        LOSSES[name].g_loss(D(G(z)).squeeze(1), None).backward()
        grads[name] = [p.grad.clone() for p in G.parameters()]
    for a, b in zip(grads["flipped"], grads["nonsaturating"]):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_finite_at_extreme_logits(name):
    big = torch.tensor([-1e4, 1e4, 0.0], requires_grad=True)
    v = LOSSES[name]
    d = v.d_loss(big, big.flip(0))
    g = v.g_loss(big, big.flip(0))
    (d + g).backward()
    assert torch.isfinite(d) and torch.isfinite(g) and torch.isfinite(big.grad).all()


def test_bce_discriminator_loss_closed_form():
    r = torch.tensor([2.0, -1.0])
    f = torch.tensor([0.5, -3.0])
    want = -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())
    for name in ("minimax", "nonsaturating", "flipped"):
        assert torch.allclose(LOSSES[name].d_loss(r, f), want, atol=1e-6)


def test_critic_losses_closed_forms():
    r = torch.tensor([2.0, -1.0])
    f = torch.tensor([0.5, -3.0])
    assert math.isclose(LOSSES["wgan"].d_loss(r, f).item(), f.mean().item() - r.mean().item(), abs_tol=1e-6)
    assert math.isclose(LOSSES["hinge"].d_loss(r, f).item(), ((0 + 2) / 2 + (1.5 + 0) / 2), abs_tol=1e-6)
    assert math.isclose(LOSSES["lsgan"].g_loss(f, r).item(), 0.5 * ((0.5 - 1) ** 2 + (-4) ** 2) / 2, abs_tol=1e-6)
    want = torch.nn.functional.softplus(-(r - f)).mean()
    assert torch.allclose(LOSSES["rsgan"].d_loss(r, f), want)


def test_gradient_penalty_zero_for_unit_slope_critic():
    D = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[0.6, 0.8, 0.0, 0.0]]))  # |grad_x D| = 1 everywhere
    real, fake = torch.randn(8, 4), torch.randn(8, 4)
    assert gradient_penalty(D, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        D.weight.mul_(3.0)  # slope 3 -> penalty (3 - 1)^2 = 4
    assert gradient_penalty(D, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_registry_validates():
    v = LOSSES["wgan"]
    with pytest.raises(ValueError, match="already registered"):
        register_loss(v)
    with pytest.raises(ValueError, match="Expected a lower-case name"):
        register_loss(LossVariant("Bad Name", v.d_loss, v.g_loss, "critic", ""))
    with pytest.raises(ValueError, match="Expected d_output"):
        register_loss(LossVariant("odd", v.d_loss, v.g_loss, "probs", ""))
    with pytest.raises(TypeError, match="Expected a LossVariant"):
        register_loss("wgan")
    with pytest.raises(ValueError, match="Expected a loss in"):
        get_loss("nope")
