"""Inverse propensities (Jain et al. 2016, as pyxclib computes them) and the per-dataset presets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vixml.errors import ConfigError, DataError
from vixml.metrics import PROPENSITY_PRESETS, inverse_propensity, propensity_preset


def test_inverse_propensity_by_hand():
    # N = 10 training rows; label frequencies 10, 0, 5; A = 0.55, B = 1.5
    # C = (ln 10 - 1) * 2.5 ** 0.55 = 1.302585 * 1.655300 = 2.156121
    # w = 1 + C * (f + 1.5) ** -0.55: f=10 -> 1 + C * 0.260989 = 1.562716
    #                                 f=0  -> 1 + C * 0.800137 = 2.725134
    #                                 f=5  -> 1 + C * 0.357356 = 1.770142
    train = np.zeros((10, 3), dtype=np.float32)
    train[:, 0] = 1
    train[:5, 2] = 1
    expected = [1.562716, 2.725134, 1.770142]
    np.testing.assert_allclose(inverse_propensity(sp.csr_matrix(train)), expected, atol=1e-6)
    np.testing.assert_allclose(inverse_propensity(train), expected, atol=1e-6)


def test_rarer_labels_weigh_more_and_presets_change_weights():
    train = sp.csr_matrix(np.tril(np.ones((50, 6), dtype=np.float32)))  # frequencies 50, 49, ..., 45
    w = inverse_propensity(train, *PROPENSITY_PRESETS["amazon"])
    assert np.all(np.diff(w) > 0)
    assert not np.allclose(w, inverse_propensity(train, *PROPENSITY_PRESETS["wikipedia"]))


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("LF-AmazonTitles-131K", "amazon"),
        ("data/MM-AmazonTitles-300K", "amazon"),
        ("LF-WikiSeeAlsoTitles-320K", "wikipedia"),
        ("WikiTitles-500K", "wikipedia"),
        ("EURLex-4K", "default"),
        ("wikipedia", "wikipedia"),
    ],
)
def test_preset_by_dataset_name(name, preset):
    assert propensity_preset(name) == PROPENSITY_PRESETS[preset]


def test_presets_are_the_published_values():
    assert PROPENSITY_PRESETS == {"amazon": (0.6, 2.6), "wikipedia": (0.5, 0.4), "default": (0.55, 1.5)}


def test_bad_arguments():
    with pytest.raises(ConfigError, match="B must be"):
        inverse_propensity(sp.csr_matrix((3, 2)), A=0.5, B=-1)
    with pytest.raises(DataError, match="no rows"):
        inverse_propensity(sp.csr_matrix((0, 2)))
    with pytest.raises(DataError, match="2-D"):
        inverse_propensity(np.ones(3))


def test_auto_propensity_comes_from_the_dataset_family(tmp_path):
    """eval.A/B "auto" (the default): Amazon data is scored with 0.6/2.6, not the generic 0.55/1.5."""
    from vixml.metrics import resolve_propensity

    amazon = tmp_path / "LF-AmazonTitles-131K"
    amazon.mkdir()
    assert resolve_propensity("auto", "auto", amazon) == (0.6, 2.6)
    assert resolve_propensity(0.5, "auto", amazon) == (0.5, 2.6)
    assert resolve_propensity(0.7, 1.0, amazon) == (0.7, 1.0)
    other = tmp_path / "my-data"
    other.mkdir()
    assert resolve_propensity("auto", "auto", other) == (0.55, 1.5)
