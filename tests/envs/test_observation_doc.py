"""The observation's documentation names exactly the features the simulator computes."""

from __future__ import annotations

import re
from pathlib import Path

from budgetgym.envs import OBS_DIM, OBS_FEATURES, MultiChannelBudgetEnv
from budgetgym.envs.channels import CHANNEL_NAMES
from budgetgym.envs.features import CHANNEL_FEATURES, FEATURES, GLOBAL_FEATURES

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


def _table_rows(section: str, header: str) -> dict[str, str]:
    """Feature name -> its meaning, from the table whose header starts with ``header``."""
    table = re.search(rf"^[ \t]*\| {header} \|.*?\n((?:[ \t]*\|.*\n?)+)", section, re.M)
    assert table, f"no table headed '{header}'"
    cells = [line.split("|")[1:3] for line in table.group(1).splitlines()[1:]]
    return {name.strip().strip("`"): meaning.strip() for name, meaning in cells}


def test_env_docstring_rows_are_the_feature_table():
    """One row per entry of ``features.FEATURES``, with its doc line, in table order."""
    section = _section(MultiChannelBudgetEnv.__doc__, "Observation Space")
    for kind in ("campaign", "channel"):
        rows = _table_rows(section, f"{kind} feature")
        table = {f.name: f.doc for f in FEATURES if f.kind == kind}
        assert list(rows.items()) == list(table.items())


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
