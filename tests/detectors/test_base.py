import dataclasses
import json

import numpy as np
import pytest

from gandiag.detectors import DETECTORS, SEVERITIES, Detector, Finding, register_detector
from gandiag.detectors.base import DetectorConfig, count, fraction
from gandiag.detectors.mode_collapse import ModeCollapseConfig
from gandiag.detectors.oscillation import OscillationConfig


def _finding(**changes):
    fields = dict(kind="mode_collapse", severity="warning", start_step=10, end_step=20,
                  evidence={"modes_total": 8}, message="Covers 2 of 8 modes; try more D steps")
    fields.update(changes)
    return Finding(**fields)


class TestFinding:
    def test_round_trips_through_json(self):
        evidence = {"ratio": np.float32(0.25), "n": np.int64(3), "metric": "div/recall", "ok": np.bool_(True)}
        f = _finding(evidence=evidence)
        data = json.loads(json.dumps(f.to_dict()))
        assert Finding.from_dict(data) == f
        assert type(f.evidence["ratio"]) is float and type(f.evidence["n"]) is int and f.evidence["ok"] is True

    def test_steps_become_ints(self):
        f = _finding(start_step=np.int64(5), end_step=7.0)
        assert (type(f.start_step), type(f.end_step)) == (int, int)

    @pytest.mark.parametrize("changes, match", [
        ({"severity": "fatal"}, r"Expected severity in \('info', 'warning', 'critical'\) but got 'fatal'"),
        ({"start_step": 30}, "Expected end_step >= start_step but got start_step=30, end_step=20"),
        ({"start_step": 1.5}, "Expected start_step to be a whole step but got 1.5"),
        ({"message": "two\nlines"}, "Expected message to be one non-empty line"),
        ({"kind": "Mode Collapse"}, "Expected kind to be a non-empty snake_case str"),
    ])
    def test_rejects_invalid_fields(self, changes, match):
        with pytest.raises(ValueError, match=match):
            _finding(**changes)

    def test_rejects_non_plain_evidence(self):
        match = r"Expected evidence\['steps'\] to be a float, int, bool or str but got list"
        with pytest.raises(TypeError, match=match):
            _finding(evidence={"steps": [1, 2]})

    def test_from_dict_requires_exact_keys(self):
        data = _finding().to_dict()
        data["extra"] = 1
        with pytest.raises(ValueError, match="Expected a finding dict with keys"):
            Finding.from_dict(data)

    def test_severities(self):
        assert SEVERITIES == ("info", "warning", "critical")


class TestConfig:
    @pytest.mark.parametrize("kind", sorted(DETECTORS))
    def test_every_threshold_is_validated(self, kind):
        config_cls = DETECTORS[kind].Config
        config_cls()  # the defaults are valid
        for f in dataclasses.fields(config_cls):
            rule = f.metadata.get("rule")
            assert rule is not None, f"{config_cls.__qualname__}.{f.name} has no validation rule"
            bad = {"fraction": 1.0, "count": 0, "ratio": 1.0, "positive": 0.0}[rule]
            match = rf"Expected {config_cls.__qualname__}\.{f.name} to be .* but got {bad}"
            with pytest.raises(ValueError, match=match):
                config_cls(**{f.name: bad})

    @pytest.mark.parametrize("value", [1.5, 0.0, float("nan"), True, "0.3"])
    def test_fraction_field(self, value):
        with pytest.raises(ValueError, match=r"Expected OscillationConfig\.min_acf to be a number in \(0, 1\) but got"):
            OscillationConfig(min_acf=value)

    @pytest.mark.parametrize("value", [0, 2.0, True])
    def test_count_field(self, value):
        with pytest.raises(ValueError, match=r"Expected ModeCollapseConfig\.min_evals to be an int >= 1 but got"):
            ModeCollapseConfig(min_evals=value)

    def test_configs_are_frozen(self):
        with pytest.raises(dataclasses.FrozenInstanceError):
            ModeCollapseConfig().min_evals = 3

    def test_detector_rejects_a_config_of_another_detector(self):
        match = "Expected ModeCollapseConfig for detector 'mode_collapse' but got OscillationConfig"
        with pytest.raises(TypeError, match=match):
            DETECTORS["mode_collapse"](OscillationConfig())

    def test_detector_takes_its_config(self):
        detector = DETECTORS["mode_collapse"](ModeCollapseConfig(min_evals=3))
        assert detector.config.min_evals == 3


@dataclasses.dataclass(frozen=True)
class _Config(DetectorConfig):
    share: float = fraction(0.5)
    points: int = count(3)


def _detector_class(**attrs):
    body = dict(kind="toy_detector", Config=_Config, description="A toy.", advice="try nothing",
                detect=lambda self, run: [])
    body.update(attrs)
    return type("Toy", (Detector,), body)


class TestRegistry:
    def test_builtin_detectors_are_registered(self):
        assert set(DETECTORS) == {
            "vanishing_generator_gradient", "mode_collapse", "oscillation", "divergence",
            "discriminator_too_strong", "discriminator_too_weak", "generator_gets_no_gradient",
            "output_mismatch", "saturated_probabilities", "discriminator_changed_in_generator_step",
        }
        for kind, cls in DETECTORS.items():
            assert cls.kind == kind

    def test_registers_as_a_decorator(self, restore_registry):
        cls = _detector_class()
        assert register_detector(cls) is cls
        assert DETECTORS["toy_detector"] is cls

    def test_rejects_a_non_detector(self, restore_registry):
        with pytest.raises(TypeError, match="Expected a subclass of Detector but got"):
            register_detector(dict)
        with pytest.raises(TypeError, match="Expected a subclass of Detector but got"):
            register_detector(Detector)

    @pytest.mark.parametrize("kind", ["", "ToyDetector", "toy-detector", "toy__x", 3])
    def test_rejects_a_kind_not_in_snake_case(self, restore_registry, kind):
        with pytest.raises(ValueError, match="Expected Toy.kind to be a non-empty snake_case str but got"):
            register_detector(_detector_class(kind=kind))

    def test_rejects_a_duplicate_kind(self, restore_registry):
        match = "Expected a new detector kind but 'oscillation' is already registered by Oscillation"
        with pytest.raises(ValueError, match=match):
            register_detector(_detector_class(kind="oscillation"))

    def test_rejects_a_config_that_is_not_a_frozen_dataclass(self, restore_registry):
        @dataclasses.dataclass
        class Mutable:
            share: float = 0.5

        for config in (Mutable, dict, None):
            with pytest.raises(TypeError, match="Expected Toy.Config to be a frozen dataclass but got"):
                register_detector(_detector_class(Config=config))

    def test_rejects_missing_metadata(self, restore_registry):
        with pytest.raises(ValueError, match="Expected Toy.description to be one non-empty line but got ''"):
            register_detector(_detector_class(description=""))
        with pytest.raises(ValueError, match="Expected Toy.advice to be one non-empty line"):
            register_detector(_detector_class(advice="a\nb"))

    def test_rejects_a_detector_without_detect(self, restore_registry):
        cls = _detector_class()
        del cls.detect
        with pytest.raises(TypeError, match="Expected Toy to implement detect"):
            register_detector(cls)
