"""The observation's documentation names exactly the features the simulator computes."""

from __future__ import annotations

import re
from pathlib import Path

from budgetgym.envs import OBS_DIM, OBS_FEATURES, MultiChannelBudgetEnv
from budgetgym.envs.campaigns import CHANNEL_FEATURES, GLOBAL_FEATURES
from budgetgym.envs.channels import CHANNEL_NAMES

REPO = Path(__file__).resolve().parents[2]


def _section(doc: str, title: str) -> str:
    """The text of the Markdown section ``## title`` of a docstring, up to the next section."""
    match = re.search(rf"^\s*## {re.escape(title)}\n(.*?)(?=^\s*## |\Z)", doc, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def _table_names(section: str, header: str) -> list[str]:
    """Feature names in the first column of the table whose header starts with ``header``."""
    table = re.search(rf"^[ \t]*\| {header} \|.*?\n((?:[ \t]*\|.*\n?)+)", section, re.M)
    assert table, f"no table headed '{header}'"
    rows = [line.split("|")[1] for line in table.group(1).splitlines()[1:]]
    return [name for cell in rows for name in re.findall(r"``([a-z_]+)``", cell)]


def test_env_docstring_lists_every_observation_feature():
    section = _section(MultiChannelBudgetEnv.__doc__, "Observation Space")
    campaign = _table_names(section, "campaign feature")
    channel = _table_names(section, "channel feature")
    assert sorted(campaign) == sorted(GLOBAL_FEATURES)
    assert sorted(channel) == sorted(CHANNEL_FEATURES)

    counts = re.search(
        r"``Box\(\((\d+),\), float32\)``: (\d+) campaign features, then (\d+) features for each "
        r"of the (\d+) channels",
        " ".join(section.split()),
    )
    assert counts, "the section must state the shape and the feature counts"
    total, n_campaign, n_channel, n_channels = map(int, counts.groups())
    assert (n_campaign, n_channel, n_channels) == (
        len(GLOBAL_FEATURES),
        len(CHANNEL_FEATURES),
        len(CHANNEL_NAMES),
    )
    assert total == n_campaign + n_channel * n_channels == OBS_DIM == len(OBS_FEATURES)


def test_simulator_doc_and_readme_state_the_observation():
    simulator = (REPO / "docs" / "simulator.md").read_text()
    section = simulator[simulator.index("## 8. What the policy observes") :]
    assert f"`Box(({OBS_DIM},), float32)`" in section
    named = set(re.findall(r"[a-z_]+", " ".join(re.findall(r"`([^`]+)`", section))))
    missing = set(GLOBAL_FEATURES + CHANNEL_FEATURES) - named
    assert not missing, f"docs/simulator.md section 8 does not name {sorted(missing)}"

    readme = (REPO / "README.md").read_text()
    assert f"| Observation | {OBS_DIM} features an advertiser can see" in readme
