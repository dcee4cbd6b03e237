
import pytest

from gandiag.zoo import SCENARIOS, Scenario, register_scenario, select
from gandiag.zoo.dirac import DiracConfig
from gandiag.zoo.scenarios import REQUIRED, train_config


@pytest.fixture
def restore():
    saved = dict(SCENARIOS)
    yield
    SCENARIOS.clear()
    SCENARIOS.update(saved)


def _s(**kw):
    base = dict(name="x-test", tiers=frozenset({"quick"}), split="calibration", intent=frozenset(),
                how="closed form of the Dirac-GAN radius", dirac=DiracConfig())
    base.update(kw)
    return Scenario(**base)


def test_a_valid_scenario_registers(restore):
    s = register_scenario(_s())
    assert SCENARIOS["x-test"] is s and s in select("quick") and s in select("full")


@pytest.mark.parametrize("kw, match", [
    (dict(name="Bad Name"), "lower-case scenario name"),
    (dict(tiers=frozenset({"nightly"})), "tiers"),
    (dict(split="test"), "split"),
    (dict(intent=frozenset({"not_a_kind"})), "intent kinds"),
    (dict(intent=frozenset({"oscillation"}), dont_care=frozenset({"oscillation"})), "disjoint"),
    (dict(dirac=None), "exactly one of train= and dirac="),
    (dict(how="?"), "how="),
    (dict(mode_std=0.1), "mode_std"),
])
def test_malformed_scenarios_are_refused(restore, kw, match):
    with pytest.raises(ValueError, match=match):
        register_scenario(_s(**kw))


def test_a_name_registers_once(restore):
    register_scenario(_s())
    with pytest.raises(ValueError, match="already registered"):
        register_scenario(_s())


def test_train_config_wants_every_hyper_parameter():
    kw = dict(loss="minimax", data="ring8", seed=0, steps=10, batch_size=8, lr_g=1e-3, lr_d=1e-3,
              betas=(0.5, 0.999), d_steps=1, width=16)
    cfg = train_config(**kw)
    assert (cfg.model.width, cfg.model.depth, cfg.model.latent_dim, cfg.threads) == (16, 3, 16, 1)
    # On digits the width is the conv nets' channel count, whatever ModelConfig maps it from.
    assert train_config(**{**kw, "data": "digits"}).model.conv_width == 16
    with pytest.raises(ValueError, match="unknown"):
        train_config(**kw, lr=1e-3)
    for key in REQUIRED:
        with pytest.raises(ValueError, match="missing"):
            train_config(**{k: v for k, v in kw.items() if k != key})


def test_registered_zoo_is_consistent():
    assert select("quick") and set(select("quick")) <= set(select("full"))
    splits = {s.split for s in select("full")}
    assert splits == {"calibration", "heldout"}
    for s in SCENARIOS.values():
        assert s.intent.isdisjoint(s.dont_care)
        if s.train is not None:
            # every hyper-parameter explicit: the scenario does not move with TrainConfig's defaults
            assert s.train.device == "cpu" and s.train.monitor.diversity_every == 50
