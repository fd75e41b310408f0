"""The table of observation features: layouts, positions, scalings, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.features import (
    CHANNEL_FEATURES,
    DEFAULT_LAYOUT,
    FEATURES,
    GLOBAL_FEATURES,
    OBS_DIM,
    OBS_FEATURES,
    TARGET_ROI_SCALE,
    ObservationLayout,
    action_dim,
)


def test_layout_positions_follow_the_table():
    layout = ObservationLayout(("a", "b", "c"))
    assert layout.dim == len(GLOBAL_FEATURES) + 3 * len(CHANNEL_FEATURES) == len(layout.features)
    assert layout.action_dim == action_dim(3) == 4
    for position, name in enumerate(layout.features):
        assert layout.index(name) == position
    for name in CHANNEL_FEATURES:
        columns = layout.features[layout.channel_slice(name)]
        assert columns == tuple(f"{c}/{name}" for c in ("a", "b", "c"))
    assert layout.low.shape == layout.high.shape == (layout.dim,)
    assert (layout.low < layout.high).all()
    with pytest.raises(KeyError, match="'d/spend_rate'"):
        layout.index("d/spend_rate")
    with pytest.raises(KeyError, match="'nope'"):
        layout.channel_slice("nope")
    with pytest.raises(ValueError, match="distinct"):
        ObservationLayout(("a", "a"))


def test_default_layout_and_scales():
    assert OBS_DIM == DEFAULT_LAYOUT.dim and OBS_FEATURES == DEFAULT_LAYOUT.features
    assert len({(f.name, f.kind) for f in FEATURES}) == len(FEATURES)
    assert DEFAULT_LAYOUT.scale("target_roi") == TARGET_ROI_SCALE == 1.0 / 3.0
    assert DEFAULT_LAYOUT.scale("search/log_clicks") == DEFAULT_LAYOUT.scale("log_clicks")
    assert DEFAULT_LAYOUT.scale("budget_left_frac") == 1.0


def test_kernel_writes_each_feature_into_its_column():
    """Columns the simulator fills agree with the layout's names and scalings."""
    campaigns = BatchedCampaigns("mixed", horizon_hours=24)
    obs, info = campaigns.reset(1_000_000 + np.arange(8))
    layout = campaigns.layout
    roi = obs[:, layout.index("target_roi")] / layout.scale("target_roi")
    np.testing.assert_allclose(roi, info["target_roi"], rtol=1e-6)
    np.testing.assert_array_equal(obs[:, layout.index("budget_left_frac")], 1.0)
    request = np.zeros((8, layout.n_channels))
    request[:, 2] = campaigns.params.budget_cny / 24
    obs, _, _, info = campaigns.step_spend(request)
    spend = obs[:, layout.channel_slice("cum_spend_frac")] * campaigns.params.budget_cny[:, None]
    np.testing.assert_allclose(spend, info["spend_by_channel"], rtol=1e-6, atol=1e-3)
    assert (obs[:, layout.index(f"{layout.channel_names[2]}/log_impressions")] > 0).all()
    others = np.delete(obs[:, layout.channel_slice("log_impressions")], 2, axis=1)
    np.testing.assert_array_equal(others, 0.0)
