"""Upper bounds on the sizes a training config or an evaluation may ask for.

A size past these bounds would not fail at once: ``n_envs: 1e9`` or ``--batch-size 1e9``
allocate until the machine runs out of memory, ``horizon_hours: 1e9`` never finishes an episode.
Each check raises one ``ValueError`` sentence naming the key, the bound and the memory the
requested size would need, computed from the arrays it sizes:

- campaigns stepped together hold one float32 observation of ``OBS_DIM`` features each per
  hour (PPO keeps ``n_steps`` of them in its rollout buffer);
- the hindsight oracle (validation references, the ``oracle_ratio`` of every evaluation) holds
  the realized market of every channel-hour: volume, price and conversion-rate draws, float64
  ``(campaigns, horizon_hours, channels)`` each;
- an evaluation keeps one record (a dict of numbers) per campaign.

Only numpy and the simulator's constants are imported: ``evaluate`` uses these checks without
the train extra.
"""

from __future__ import annotations

from budgetgym.envs import CHANNEL_NAMES, OBS_DIM

#: Campaigns stepped together (training ``n_envs``, validation ``n_eval_episodes``, an
#: evaluation's ``--batch-size``).
MAX_CAMPAIGNS = 65_536
#: Episode length: one year of hourly steps. Scenarios without an event place it at hour 10,000
#: (``NO_EVENT_HOUR``), past any horizon allowed here.
MAX_HORIZON_HOURS = 8_760
#: Campaigns in one evaluation (per scenario).
MAX_EPISODES = 10_000_000
#: Bytes of one float32 / float64 number.
FLOAT32_BYTES, FLOAT64_BYTES = 4, 8
#: Market arrays per channel-hour the oracle holds (volume, price, conversion rate).
ORACLE_MARKET_ARRAYS = 3
#: Memory of an evaluation's record of one campaign: a dict of about 20 numbers and names
#: (``episodes.csv``'s row), about 1 kB by ``sys.getsizeof`` of the dict and its values.
EPISODE_RECORD_BYTES = 1_000


def format_bytes(size: float) -> str:
    """``1.5 GB`` style: decimal units, three significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:,.3g} {unit}" if unit != "B" else f"{size:,.0f} B"
        size /= 1000
    raise AssertionError("unreachable")


def observation_bytes(campaigns: int, hours: int = 1) -> int:
    """Memory of ``hours`` float32 observations of ``campaigns`` campaigns."""
    return campaigns * hours * OBS_DIM * FLOAT32_BYTES


def oracle_market_bytes(campaigns: int, horizon_hours: int) -> int:
    """Memory of the oracle's realized market for ``campaigns`` campaigns of ``horizon_hours``."""
    cells = campaigns * horizon_hours * len(CHANNEL_NAMES)
    return ORACLE_MARKET_ARRAYS * cells * FLOAT64_BYTES


def check_campaigns(campaigns: int, need: str, size: int, key: str = "") -> None:
    """Raise ``ValueError`` when more than :data:`MAX_CAMPAIGNS` campaigns would be stepped
    together; ``need`` says what of ``size`` bytes they would fill. The message starts with
    ``key`` (a config validator leaves it out: the error formatter names the key)."""
    if campaigns > MAX_CAMPAIGNS:
        _refuse(
            key,
            f"must be at most {MAX_CAMPAIGNS:,} campaigns stepped together, got {campaigns:,}: "
            f"{need} alone would need {format_bytes(size)}",
        )


def check_horizon(horizon_hours: int, key: str = "") -> None:
    """Raise ``ValueError`` for an episode longer than :data:`MAX_HORIZON_HOURS`."""
    if horizon_hours > MAX_HORIZON_HOURS:
        _refuse(
            key,
            f"must be at most {MAX_HORIZON_HOURS:,} (one year of hours), got {horizon_hours:,}: "
            "the oracle's hourly market of a single campaign alone would need "
            f"{format_bytes(oracle_market_bytes(1, horizon_hours))}",
        )


def check_episodes(episodes: int, key: str = "") -> None:
    """Raise ``ValueError`` for an evaluation of more than :data:`MAX_EPISODES` campaigns."""
    if episodes > MAX_EPISODES:
        size = episodes * EPISODE_RECORD_BYTES
        _refuse(
            key,
            f"must be at most {MAX_EPISODES:,} campaigns, got {episodes:,}: their per-campaign "
            f"records alone would need {format_bytes(size)}",
        )


def _refuse(key: str, text: str) -> None:
    """A sentence naming ``key`` (a config validator leaves the key to the error formatter)."""
    raise ValueError(f"{key} {text}." if key else f"{text}.")
