"""Channel lists as policies know them: recorded in metadata, a different one refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET, ChannelSet
from budgetgym.agents.checkpoints import check_compatible, env_signature, recorded_channels
from budgetgym.envs import ENV_ID

_KEPT = [i for i, name in enumerate(DEFAULT_CHANNEL_SET.names) if name != "live"]
NO_LIVE = ChannelSet(
    tuple(DEFAULT_CHANNEL_SET.names[i] for i in _KEPT),
    tuple(DEFAULT_CHANNEL_SET.billing[i] for i in _KEPT),
    tuple(DEFAULT_CHANNEL_SET.launch_support[i] for i in _KEPT),
)


def meta_of(channels: ChannelSet) -> dict:
    return {
        "env_id": ENV_ID,
        "obs_dim": channels.obs_dim,
        "action_dim": channels.action_dim,
        "env_signature": env_signature(channels),
        "channels": channels.records(),
    }


def test_the_reference_six_are_found_by_behaviour() -> None:
    assert DEFAULT_CHANNEL_SET.names[DEFAULT_CHANNEL_SET.per_sale.argmax()] == "affiliate"
    assert DEFAULT_CHANNEL_SET.n_per_sale == 1 and DEFAULT_CHANNEL_SET.obs_dim == 77
    assert NO_LIVE.obs_dim == 67 and NO_LIVE.action_dim == 6
    assert list(NO_LIVE.paid) == [0, 1, 2, 4]


def test_records_round_trip_and_old_metadata_means_the_reference_six() -> None:
    assert ChannelSet.from_records(NO_LIVE.records()) == NO_LIVE
    assert recorded_channels({}, "old") == DEFAULT_CHANNEL_SET
    with pytest.raises(ValueError, match="corrupt"):
        recorded_channels({"channels": [{"name": "search"}]}, "bad")


def test_a_checkpoint_refuses_another_channel_list_in_one_sentence() -> None:
    where = Path("run/final")
    assert check_compatible(meta_of(NO_LIVE), where, NO_LIVE) == NO_LIVE
    with pytest.raises(ValueError) as err:
        check_compatible(meta_of(NO_LIVE), where, DEFAULT_CHANNEL_SET)
    text = str(err.value)
    assert "made for the channels search (cpc), feed (cpm), short_video" in text
    assert "live (cpm)" in text and text.count(". ") == 0
    billed = ChannelSet(NO_LIVE.names, ("cpm",) * 5, NO_LIVE.launch_support)
    with pytest.raises(ValueError, match="made for the channels"):
        check_compatible(meta_of(NO_LIVE), where, billed)
    with pytest.raises(ValueError, match="observations of size 77"):
        check_compatible({**meta_of(NO_LIVE), "obs_dim": 77}, where)


def test_a_checkpoint_of_the_retired_market_is_refused_naming_v1() -> None:
    """Metadata without an env id comes from v0; its observation layout may even match."""
    v0 = {k: v for k, v in meta_of(DEFAULT_CHANNEL_SET).items() if k != "env_id"}
    with pytest.raises(ValueError, match="MultiChannelBudget-v0 is retired.*Make budgetgym/"):
        check_compatible(v0, Path("run/final"))
    with pytest.raises(ValueError, match="unknown environment 'budgetgym/Other-v3'"):
        check_compatible({**v0, "env_id": "budgetgym/Other-v3"}, Path("run/final"))
