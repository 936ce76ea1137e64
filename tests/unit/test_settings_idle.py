"""Settings load from hub.toml tables strictly; the idle policy picks the decode mode."""

from __future__ import annotations

import numpy as np
import pytest

from privastead import configfile
from privastead.errors import ConfigError
from privastead.media.detector import MotionResult
from privastead.media.idle import IdlePolicy
from privastead.media.settings import DetectionSettings, EventSettings
from privastead.media.verdicts import Blobs

TOML = """
sensitivity = 0.7
min_object_area = 0.0003
zones = [[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]]
masks = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.1]]]
"""


def test_detection_settings_from_toml() -> None:
    s = configfile.parse(TOML, DetectionSettings)
    assert s.sensitivity == 0.7 and s.min_object_area == 0.0003
    assert s.zones == (((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)),)
    assert len(s.masks[0]) == 3
    assert s.noise_floor < DetectionSettings().noise_floor  # more sensitive, lower floor


def test_unknown_keys_and_bad_values_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r":3: .*sensitivty.*unknown key"):
        configfile.parse("\n\nsensitivty = 0.5\n", DetectionSettings)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        configfile.parse("zones = [[[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]]", DetectionSettings)
    with pytest.raises(ConfigError, match="max_length"):
        configfile.parse("max_length = 0.5", EventSettings)


def test_idle_policy() -> None:
    quiet = MotionResult(0.0, (), False, False)
    wake = MotionResult(0.0, (), False, False, wake=True)
    policy = IdlePolicy(quiet_seconds=3.0)
    assert policy.update(quiet, 0.0, False) == "keyframes"
    assert policy.update(wake, 1.0, False) == "full"
    assert policy.update(quiet, 3.5, False) == "full"
    assert policy.update(quiet, 4.5, True) == "full"  # an event is running
    assert policy.update(quiet, 7.4, False) == "full"
    assert policy.update(quiet, 7.6, False) == "keyframes"
    assert IdlePolicy(enabled=False).update(quiet, 0.0, False) == "full"


def test_object_sized_change_wakes_the_idle_decoder_in_chronic_areas_too() -> None:
    # A keyframe shows a person in front of swaying bushes: only full rate can tell them from
    # the bushes, so that blob wakes the decoder like any other; streaks, ghosts and what is
    # too small do not.
    n = 5
    yes = np.ones(n, bool)
    blobs = Blobs(
        cells=np.full(n, 40.0),
        boxes=np.zeros((n, 4)),
        big=np.array([True, True, True, True, False]),
        thin=np.array([False, False, True, False, False]),
        ghost=np.array([False, False, False, True, False]),
        soft=np.zeros(n, bool),
        coherent=yes,
        chronic=np.array([False, True, True, True, True]),
        sudden=yes,
        sharp=yes,
    )
    assert blobs.wake.tolist() == [True, True, False, False, False]
