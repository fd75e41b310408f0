"""Depth of the market: how much of the planner's GMV a static, flat or simple policy keeps.

On held-out campaigns of each scenario, the planner (``agents/planner.py``: the information-fair
reference) is compared with

- the **best static policy**: one fixed channel split and even pacing (a constant action), chosen
  on validation campaigns by :func:`search_static` and then evaluated held out;
- the **flat planner**: the planner's own per-channel totals (what it requested per channel over
  the horizon, per campaign) spread evenly over the hours, executed open loop (:class:`FlatPlan`);
- ``uniform``, ``calendar_pacing``, ``mmm_static`` and the best rule (``agents/verdict.py``'s
  criterion: most GMV within ``planner_cc``'s miss rate + 5 points, else the best AuctionNet
  score).

It writes the JSON (``benchmarks/depth.json`` by default) with each scenario's figures, the
ratios the depth targets use and whether each target holds::

    .venv/bin/python scripts/bench_depth.py --json benchmarks/depth.json

The defaults (1,024 held-out and 128 validation campaigns per scenario) take about 35 minutes for
the seven scenarios on 2 CPU cores. ``--scenarios`` takes names, ``all`` or scenario files.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Campaigns per scenario, held out and for the static search. The ROI-bound share's target band
#: is tested at its edge: 1,024 campaigns put a standard error of 1.5 points on a 35% share
#: (2.8 points at 256).
DEFAULT_EPISODES = 1024
DEFAULT_VALIDATION_EPISODES = 128
DEFAULT_JSON = Path("benchmarks/depth.json")
#: A campaign is ROI-bound under the planner when it ends with less than this share of its
#: budget spent: the target, not the budget, stopped it.
ROI_BOUND_UTILIZATION = 0.99
#: The static search: random splits (the uniform one first) times pace levels, then coordinate
#: rounds of (log-share step, log-pace step), each move kept when it ranks better.
SEARCH_SEED = 0
SEARCH_SPLITS = 32
SEARCH_PACES = (0.3, 0.5, 0.8, 1.2, 2.0)
SEARCH_STEPS = ((0.7, 0.3),) * 2 + ((0.35, 0.15),) * 3 + ((0.15, 0.07),) * 2
#: Largest pace of a static policy (the action's limit, ``envs.core.MAX_PACE_MULT``).
PACE_BOUNDS = (0.05, 5.0)
#: Rows simulated together by the static search (whole candidates per batch).
SEARCH_BATCH_ROWS = 8192
#: The depth targets: what a market worth learning must show.
TARGET_VS_STATIC, TARGET_VS_STATIC_HIGH, TARGET_VS_UNIFORM = 1.10, 1.20, 1.25
TARGET_FLAT_COST = 0.05
TARGET_ROI_BOUND = (0.30, 0.70)
#: A channel's spend share "varies across campaigns" when its p10-p90 spread is at least this.
SHARE_SPREAD_MIN = 0.01
MIXED = "mixed"


class StaticPolicy:
    """One constant action for every campaign and hour: a fixed split (channel logits) and a
    fixed pace relative to even pacing of the budget left.

    Args:
        actions: ``(dim,)`` one action for every row, or ``(n, dim)`` one per row of the batch
            the policy is reset on (the search's candidates side by side).
    """

    name = "best_static"

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions, dtype=np.float64)

    @classmethod
    def from_split(cls, shares: np.ndarray, pace: np.ndarray) -> StaticPolicy:
        """The policy of ``shares (n, k)`` (rows >= 0) at ``pace (n,)`` x even pacing."""
        from budgetgym.envs.core import pace_action, share_logits

        return cls(np.column_stack([pace_action(pace), share_logits(shares)]))

    def reset(self, campaigns) -> None:
        """Nothing to plan: the action is fixed."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        """The fixed actions ``(n, dim)``."""
        return np.broadcast_to(self.actions, (len(obs), self.actions.shape[-1])).copy(), None


class RecordedPlanner:
    """The planner, recording per campaign what it requests per channel and whether its first
    plan is ROI-bound (``PlannerPolicy.roi_bound`` at hour 0), across every batch it is reset on.

    Attributes:
        requested_cny: ``(n, k)`` total spend request per channel over the horizon, campaigns in
            the order they were run.
        planned_roi_bound: ``(n,)`` bool, the hour-0 plan's price set by the ROI constraint.
    """

    acts_in_spend = True
    name = "planner"

    def __init__(self) -> None:
        from budgetgym.agents.planner import PlannerPolicy

        self.inner = PlannerPolicy()
        self._requested: list[np.ndarray] = []
        self._planned: list[np.ndarray] = []
        self._hour = 0

    def reset(self, campaigns) -> None:
        self.inner.reset(campaigns)
        self._requested.append(np.zeros((campaigns.n_envs, len(campaigns.channels))))
        self._hour = 0

    def spend(self, obs: np.ndarray) -> np.ndarray:
        request = self.inner.spend(obs)
        self._requested[-1] += request
        if self._hour == 0:
            self._planned.append(self.inner.roi_bound.copy())
        self._hour += 1
        return request

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.inner.predict(obs, state, episode_start, deterministic)

    @property
    def requested_cny(self) -> np.ndarray:
        return np.concatenate(self._requested)

    @property
    def planned_roi_bound(self) -> np.ndarray:
        return np.concatenate(self._planned)


class FlatPlan:
    """Open loop: each hour requests ``totals / H`` per channel, the per-channel totals of a plan
    spread evenly over the horizon (``acts_in_spend``).

    Args:
        seeds: ``(n,)`` the campaigns the totals belong to.
        totals_cny: ``(n, k)`` spend per channel over the horizon.
        horizon_hours: the hours to spread it over.
    """

    acts_in_spend = True
    name = "flat_planner"

    def __init__(self, seeds: np.ndarray, totals_cny: np.ndarray, horizon_hours: int) -> None:
        self.seeds = np.asarray(seeds, dtype=np.int64)
        self.hourly_cny = np.asarray(totals_cny, dtype=np.float64) / horizon_hours
        self._rows = np.arange(0)

    def reset(self, campaigns) -> None:
        order = np.argsort(self.seeds)
        where = np.searchsorted(self.seeds, campaigns.params.seeds, sorter=order)
        rows = order[np.minimum(where, len(order) - 1)]
        if not np.array_equal(self.seeds[rows], campaigns.params.seeds):
            raise ValueError("FlatPlan was reset on campaigns whose plan it does not hold.")
        self._rows = rows

    def spend(self, obs: np.ndarray) -> np.ndarray:
        return self.hourly_cny[self._rows]

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        raise TypeError("FlatPlan plans spend: step campaigns.step_spend(policy.spend(obs)).")


@dataclass
class StaticChoice:
    """The static search's answer: ``shares (k,)``, ``pace``, and its validation figures."""

    shares: np.ndarray
    pace: float
    validation_gmv: float
    validation_miss_rate: float
    miss_limit: float
    feasible: bool
    candidates: int

    def policy(self) -> StaticPolicy:
        return StaticPolicy.from_split(self.shares[None, :], np.array([self.pace]))


def score_statics(
    scenario: str,
    shares: np.ndarray,
    pace: np.ndarray,
    seeds: np.ndarray,
    horizon_hours: int,
    on_step=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roll out each static candidate (``shares (m, k)``, ``pace (m,)``) on the campaigns
    ``seeds (n,)``; return mean GMV ``(m,)`` CNY, ROI-miss rate ``(m,)`` and mean AuctionNet
    score ``(m,)``. Candidates run side by side, ``m x n`` rows in batches of whole candidates."""
    from budgetgym.agents.evaluation import rollout
    from budgetgym.agents.metrics import auctionnet_score
    from budgetgym.envs.campaigns import BatchedCampaigns, roi_target_missed

    m, n = len(pace), len(seeds)
    per_batch = max(1, SEARCH_BATCH_ROWS // n)
    gmv, missed, score = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    for first in range(0, m, per_batch):
        part = slice(first, min(first + per_batch, m))
        count = part.stop - part.start
        policy = StaticPolicy.from_split(
            np.repeat(shares[part], n, axis=0), np.repeat(pace[part], n)
        )
        info, _ = rollout(policy, campaigns, np.tile(seeds, count), on_step)
        g, s, r = info["gmv_total"], info["spend_total"], info["target_roi"]
        gmv[part] = g.reshape(count, n)
        missed[part] = roi_target_missed(g, r, s).reshape(count, n)
        score[part] = auctionnet_score(g, s, r).reshape(count, n)
    return gmv.mean(axis=1), missed.mean(axis=1), score.mean(axis=1)


def best_index(gmv: np.ndarray, miss: np.ndarray, score: np.ndarray, limit: float) -> int:
    """The first candidate by the criterion that ranks policies (``agents/verdict.py``'s
    ``rank_key``): those missing at most ``limit`` of the campaigns by mean GMV ``(m,)``, then the
    others by mean AuctionNet score ``(m,)``."""
    from budgetgym.agents.verdict import rank_key

    rows = [
        {"gmv_mean": g, "roi_violation_rate": m, "auctionnet_score_mean": s}
        for g, m, s in zip(gmv, miss, score, strict=True)
    ]
    return min(range(len(rows)), key=lambda i: rank_key(rows[i], limit))


def search_rows(n_channels: int, validation_episodes: int) -> int:
    """Campaign rows :func:`search_static` simulates (for the progress bar)."""
    random_stage = SEARCH_SPLITS * len(SEARCH_PACES)
    rounds = len(SEARCH_STEPS) * (2 * n_channels + 2)
    return (random_stage + rounds) * validation_episodes


def search_static(
    scenario: str,
    seeds: np.ndarray,
    miss_limit: float,
    horizon_hours: int,
    on_step=None,
) -> StaticChoice:
    """The best static policy on the validation campaigns ``seeds``.

    Random search, then coordinate search:

    1. ``SEARCH_SPLITS`` splits (the uniform one and flat-Dirichlet draws from a generator seeded
       with ``SEARCH_SEED``), each at every pace of ``SEARCH_PACES``;
    2. from the best, rounds of ``SEARCH_STEPS``: each channel's log-share and the log-pace moved
       up and down by the round's step (``2k + 2`` neighbours), the best of the neighbours and the
       current point kept.

    Candidates rank as :func:`best_index` ranks them: most mean GMV at a miss rate of at most
    ``miss_limit``, else the best AuctionNet score.
    Only ``seeds`` are read (the caller passes validation seeds).
    """
    from budgetgym.envs.campaigns import scenario_channels

    k = len(scenario_channels(scenario))
    rng = np.random.default_rng(SEARCH_SEED)
    splits = np.vstack([np.full(k, 1.0 / k), rng.dirichlet(np.ones(k), SEARCH_SPLITS - 1)])
    shares = np.repeat(splits, len(SEARCH_PACES), axis=0)
    pace = np.tile(np.asarray(SEARCH_PACES, dtype=np.float64), SEARCH_SPLITS)
    gmv, miss, score = score_statics(scenario, shares, pace, seeds, horizon_hours, on_step)
    best = best_index(gmv, miss, score, miss_limit)
    log_share, log_pace = np.log(shares[best]), np.log(pace[best])
    figures = (gmv[best], miss[best], score[best])
    evaluated = len(pace)
    for share_step, pace_step in SEARCH_STEPS:
        moves = np.vstack([np.eye(k) * share_step, -np.eye(k) * share_step])
        cand_share = np.vstack([log_share + moves, np.tile(log_share, (2, 1))])
        cand_pace = np.concatenate([np.full(2 * k, log_pace), log_pace + [pace_step, -pace_step]])
        cand_pace = np.clip(cand_pace, *np.log(PACE_BOUNDS))
        # Shares below exp(-2 x SHARE_TEMPERATURE) of the largest are one action: keep them there.
        cand_share = np.maximum(cand_share, cand_share.max(axis=1, keepdims=True) - 6.0)
        g, m, s = score_statics(
            scenario, np.exp(cand_share), np.exp(cand_pace), seeds, horizon_hours, on_step
        )
        evaluated += len(cand_pace)
        i = best_index(
            np.append(g, figures[0]), np.append(m, figures[1]), np.append(s, figures[2]), miss_limit
        )
        if i < len(cand_pace):
            log_share, log_pace, figures = cand_share[i], cand_pace[i], (g[i], m[i], s[i])
    shares_best = np.exp(log_share) / np.exp(log_share).sum()
    return StaticChoice(
        shares=shares_best,
        pace=float(np.exp(log_pace)),
        validation_gmv=float(figures[0]),
        validation_miss_rate=float(figures[1]),
        miss_limit=float(miss_limit),
        feasible=bool(figures[1] <= miss_limit + 1e-12),
        candidates=evaluated,
    )


def share_spread(rows: list[dict], channels: list[str]) -> dict[str, dict[str, float]]:
    """Per channel: mean, p10, p90, min and max over campaigns of its share of the spend."""
    from budgetgym.agents.evaluation import SHARE_PREFIX

    out = {}
    for channel in channels:
        share = np.array([row[f"{SHARE_PREFIX}{channel}"] for row in rows])
        p10, p90 = np.percentile(share, [10, 90])
        out[channel] = {
            "mean": float(share.mean()),
            "p10": float(p10),
            "p90": float(p90),
            "min": float(share.min()),
            "max": float(share.max()),
        }
    return out


def _figures(summary: dict | None) -> dict:
    if summary is None:
        return {"gmv": None, "miss_rate": None}
    return {"gmv": summary["gmv_mean"], "miss_rate": summary["roi_violation_rate"]}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def measure_scenario(
    scenario: str,
    episodes: int,
    seed_start: int,
    validation_episodes: int,
    horizon_hours: int,
    bar,
) -> dict:
    """Every figure of one scenario (see the module docstring); ``bar`` advances over the
    campaign-steps (:func:`steps_per_scenario`)."""
    from budgetgym.agents.baselines import BASELINE_NAMES
    from budgetgym.agents.callbacks import validation_seeds
    from budgetgym.agents.evaluation import row_channels, simulate, summarize
    from budgetgym.agents.policy import PLANNER_CC, load_policy, unavailable
    from budgetgym.agents.verdict import best_rule

    def run(policy, name: str, seeds_from: int = seed_start, count: int = episodes):
        bar.set_description(f"depth ({name} on {scenario})")
        result = simulate(policy, scenario, count, seeds_from, 256, bar, horizon_hours)
        return result, summarize(result.episodes, name, scenario)

    planner = RecordedPlanner()
    planner_run, planner_row = run(planner, "planner")
    summaries: dict[str, dict] = {}
    not_run: dict[str, str] = {}
    for name in (PLANNER_CC, *BASELINE_NAMES):
        policy = load_policy(name)
        reason = unavailable(policy, scenario)
        if reason is not None:
            not_run[name] = reason
            bar.update(episodes * horizon_hours)
            continue
        summaries[name] = run(policy, name)[1]
    rule = best_rule(list(summaries.values()))
    rule_name = rule["policy"]
    # The search's miss limit: the best rule's miss rate on the validation campaigns.
    val_seeds = validation_seeds(validation_episodes)
    _, rule_val = run(load_policy(rule_name), rule_name, int(val_seeds[0]), validation_episodes)
    bar.set_description(f"depth (static search on {scenario})")
    choice = search_static(
        scenario, val_seeds, rule_val["roi_violation_rate"], horizon_hours, bar.update
    )
    static_row = run(choice.policy(), "best_static")[1]
    seeds = np.array([row["seed"] for row in planner_run.episodes])
    flat = FlatPlan(seeds, planner.requested_cny, horizon_hours)
    flat_row = run(flat, "flat_planner")[1]

    utilization = np.array([row["budget_utilization"] for row in planner_run.episodes])
    roi_bound = float(np.mean(utilization < ROI_BOUND_UTILIZATION))
    channels = row_channels(planner_run.episodes)
    spread = share_spread(planner_run.episodes, channels)
    planner_gmv, planner_miss = planner_row["gmv_mean"], planner_row["roi_violation_rate"]
    uniform = summaries["uniform"]
    vs_static = _ratio(planner_gmv, static_row["gmv_mean"])
    vs_uniform = _ratio(planner_gmv, uniform["gmv_mean"])
    flat_ratio = _ratio(flat_row["gmv_mean"], planner_gmv)
    no_more_misses = planner_miss <= static_row["roi_violation_rate"] + 1e-12
    varies = all(s["p90"] - s["p10"] >= SHARE_SPREAD_MIN for s in spread.values())
    out = {
        "episodes": episodes,
        "planner_gmv": planner_gmv,
        "planner_miss_rate": planner_miss,
        "planner_budget_utilization": float(utilization.mean()),
        "best_static_gmv": static_row["gmv_mean"],
        "best_static_miss_rate": static_row["roi_violation_rate"],
        "best_static": {
            "shares": dict(zip(channels, map(float, choice.shares), strict=True)),
            "pace": choice.pace,
            "validation_gmv": choice.validation_gmv,
            "validation_miss_rate": choice.validation_miss_rate,
            "validation_miss_limit": choice.miss_limit,
            "within_limit": choice.feasible,
            "candidates": choice.candidates,
        },
        "uniform_gmv": uniform["gmv_mean"],
        "uniform_miss_rate": uniform["roi_violation_rate"],
        "flat_planner_gmv": flat_row["gmv_mean"],
        "flat_planner_miss_rate": flat_row["roi_violation_rate"],
        "roi_bound_share": roi_bound,
        "roi_bound_share_se": float(np.sqrt(roi_bound * (1.0 - roi_bound) / utilization.size)),
        "roi_bound_share_planned": float(planner.planned_roi_bound.mean()),
        "calendar_pacing": _figures(summaries.get("calendar_pacing")),
        "mmm_static": _figures(summaries.get("mmm_static")),
        "planner_cc": _figures(summaries.get(PLANNER_CC)),
        "best_rule": {"name": rule_name, **_figures(rule)},
        "planner_over_best_static": vs_static,
        "planner_over_uniform": vs_uniform,
        "planner_over_best_rule": _ratio(planner_gmv, rule["gmv_mean"]),
        "flat_planner_over_planner": flat_ratio,
        "planner_spend_share": spread,
        "targets": {
            "planner_1.10x_best_static": bool(vs_static >= TARGET_VS_STATIC and no_more_misses),
            "planner_1.20x_best_static": bool(
                vs_static >= TARGET_VS_STATIC_HIGH and no_more_misses
            ),
            "planner_1.25x_uniform": bool(vs_uniform >= TARGET_VS_UNIFORM),
            "flattening_costs_5pct": bool(flat_ratio <= 1.0 - TARGET_FLAT_COST),
        },
        "not_run": not_run,
    }
    if scenario == MIXED:
        low, high = TARGET_ROI_BOUND
        out["targets"]["roi_bound_30_70pct"] = bool(low <= roi_bound <= high)
        out["targets"]["spend_shares_vary"] = bool(varies)
    return out


def overall_targets(results: dict[str, dict]) -> dict[str, bool | int]:
    """The depth targets over the scenarios measured: counts and whether each holds."""

    def count(key: str) -> int:
        return sum(r["targets"][key] for r in results.values())

    n = len(results)
    out: dict[str, bool | int] = {
        "scenarios": n,
        "planner_1.10x_best_static_in": count("planner_1.10x_best_static"),
        "planner_1.20x_best_static_in": count("planner_1.20x_best_static"),
        "planner_1.25x_uniform_in": count("planner_1.25x_uniform"),
        "flattening_costs_5pct_in": count("flattening_costs_5pct"),
    }
    out["planner_1.10x_best_static_everywhere"] = out["planner_1.10x_best_static_in"] == n
    out["planner_1.20x_best_static_in_3"] = out["planner_1.20x_best_static_in"] >= 3
    out["planner_1.25x_uniform_everywhere"] = out["planner_1.25x_uniform_in"] == n
    out["flattening_costs_5pct_in_4"] = out["flattening_costs_5pct_in"] >= 4
    mixed = results.get(MIXED)
    if mixed is not None:
        out["mixed_roi_bound_30_70pct"] = mixed["targets"]["roi_bound_30_70pct"]
        out["mixed_spend_shares_vary"] = mixed["targets"]["spend_shares_vary"]
    out["all_hold"] = all(v for key, v in out.items() if isinstance(v, bool))
    return out


def steps_per_scenario(
    n_channels: int, episodes: int, validation_episodes: int, horizon_hours: int
) -> int:
    """Campaign-steps of :func:`measure_scenario`: the planner, ``planner_cc``, every rule, the
    best static and the flat planner held out, the best rule and the search on validation."""
    from budgetgym.agents.baselines import BASELINE_NAMES

    held_out = (len(BASELINE_NAMES) + 4) * episodes
    validation = validation_episodes + search_rows(n_channels, validation_episodes)
    return (held_out + validation) * horizon_hours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--episodes", type=int, default=DEFAULT_EPISODES, help="Held-out campaigns per scenario."
    )
    parser.add_argument(
        "--seed-start",
        type=int,
        default=None,
        help="First held-out seed (default EVAL_SEED_START, 1,000,000; never below it).",
    )
    parser.add_argument(
        "--validation-episodes",
        type=int,
        default=DEFAULT_VALIDATION_EPISODES,
        help="Validation campaigns of the static search (seeds from VALIDATION_SEED_START).",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["all"],
        help="Scenario names, scenario files, or 'all' (the seven shipped).",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Output JSON path.")
    parser.add_argument(
        "--horizon-hours", type=int, default=None, help="Episode length (shorter for tests)."
    )
    args = parser.parse_args(argv)

    from budgetgym.agents.callbacks import validation_seeds
    from budgetgym.agents.progress import evaluation_progress
    from budgetgym.envs.campaigns import scenario_channels
    from budgetgym.envs.scenarios import HORIZON_HOURS
    from budgetgym.scripts.cli_common import CLIError, held_out_seed_start, scenario_selection

    horizon = HORIZON_HOURS if args.horizon_hours is None else args.horizon_hours
    try:
        seed_start = held_out_seed_start(args.seed_start)
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}.")
        if horizon < 1:
            raise ValueError(f"--horizon-hours must be >= 1, got {horizon}.")
        validation_seeds(args.validation_episodes)
        scenarios = scenario_selection(args.scenarios)
    except (ValueError, CLIError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum(
        steps_per_scenario(
            len(scenario_channels(s)), args.episodes, args.validation_episodes, horizon
        )
        for s in scenarios
    )
    bar = evaluation_progress("depth", total)
    results = {}
    for scenario in scenarios:
        results[scenario] = measure_scenario(
            scenario, args.episodes, seed_start, args.validation_episodes, horizon, bar
        )
    bar.close()
    report = {
        "command": " ".join(
            ["python scripts/bench_depth.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "episodes": args.episodes,
        "seed_start": seed_start,
        "validation_episodes": args.validation_episodes,
        "validation_seed_start": int(validation_seeds(args.validation_episodes)[0]),
        "horizon_hours": horizon,
        "scenarios": results,
        "targets": overall_targets(results),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(depth_table(report))
    print(f"wrote {args.json}")
    return 0


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _x(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def depth_table(report: dict) -> str:
    """A Markdown table of the report: one row per scenario."""
    head = (
        "| scenario | planner GMV, miss | best static GMV, miss | planner / best static | "
        "planner / uniform | flat / planner | best rule (GMV, miss) | calendar_pacing | "
        "mmm_static | ROI-bound |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for name, r in report["scenarios"].items():
        rule = r["best_rule"]
        lines.append(
            f"| {name} | {r['planner_gmv']:,.0f}, {_pct(r['planner_miss_rate'])} "
            f"| {r['best_static_gmv']:,.0f}, {_pct(r['best_static_miss_rate'])} "
            f"| {_x(r['planner_over_best_static'])} | {_x(r['planner_over_uniform'])} "
            f"| {_x(r['flat_planner_over_planner'])} "
            f"| `{rule['name']}` ({rule['gmv']:,.0f}, {_pct(rule['miss_rate'])}) "
            + "".join(
                f"| {f['gmv']:,.0f}, {_pct(f['miss_rate'])} " if f["gmv"] is not None else "| — "
                for f in (r["calendar_pacing"], r["mmm_static"])
            )
            + f"| {_pct(r['roi_bound_share'])} ± {_pct(r['roi_bound_share_se'])} |"
        )
    return head + "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
