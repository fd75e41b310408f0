"""Evaluation harness: roll policies out on the batched core with common random numbers.

Every policy meets the same campaigns, traffic and conversion luck on a given seed, so
differences between policies are differences of decisions. ``evaluate`` returns one row per
episode and a summary, each campaign's GMV measured against the references' (``REFERENCES``)
on that very campaign; ``compare`` evaluates the privileged references, the rules and any other
policies on the same seeds and writes a leaderboard (JSON, Markdown), the Pareto sweep and plots.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.leaderboard import leaderboard_markdown
from budgetgym.agents.metrics import (
    auctionnet_score,
    bootstrap_ci,
    bootstrap_ratio_ci,
    compensation_pct_of_spend,
    gmv_of_met_campaigns,
    ratio_of_totals_pct,
)
from budgetgym.agents.pareto import PARETO_EPISODES, PARETO_MULTS, PlanToTarget, pareto_point
from budgetgym.agents.policy import (
    ORACLE,
    PLANNER,
    PRIVILEGED,
    Policy,
    as_policy,
    load_policy,
    unavailable,
)
from budgetgym.agents.progress import ProgressBar, evaluation_progress
from budgetgym.agents.verdict import add_paired_differences
from budgetgym.envs.campaigns import BatchedCampaigns, roi_target_missed
from budgetgym.envs.mechanisms import MECHANISM_NAMES, unmodelled_reason
from budgetgym.envs.scenarios import EVAL_SEED_START, HORIZON_HOURS, SCENARIO_NAMES, check_scenario

#: The references every campaign's GMV is measured against (``<ref>_gmv``, ``pct_of_<ref>``
#: per episode; ``gmv_ratio_to_<ref>_pct`` and the rest in the summary), the headline first:
#: the planner knows what a perfectly informed modeller could, the oracle also the realized
#: market (docs/benchmark.md, "4. Metrics").
REFERENCES = (PLANNER, ORACLE)
#: Summary fields shown in the leaderboard (besides ``policy`` and ``scenario``).
SUMMARY_FIELDS = (
    "episodes",
    "gmv_mean",
    "gmv_ci95",
    "spend_mean",
    "roi_mean",
    "roi_violation_rate",
    "compensation_mean",
    "compensation_pct_of_spend",
    "budget_utilization_mean",
    *(
        f"{prefix}{ref}{suffix}"
        for ref in REFERENCES
        for prefix, suffix in (
            ("gmv_ratio_to_", "_pct"),
            ("gmv_ratio_to_", "_ci95"),
            ("pct_of_", "_mean"),
            ("pct_of_", "_ci95"),
        )
    ),
    "auctionnet_score_mean",
    "gmv_of_met_campaigns",
    "new_customers_mean",
    "spend_share",
    "spend_share_by_day",
)

#: GMV per campaign of each reference, by ``(reference, scenario, seed_start, horizon_hours)``:
#: the campaigns ``seed_start, seed_start + 1, ...`` as far as they were evaluated.
_REFERENCE_CACHE: dict[tuple[str, str, int, int], np.ndarray] = {}


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Attributes:
        episodes: one dict per episode (seed, scenario, budget, gmv, spend, roi, ...).
        summary: aggregate metrics (see ``SUMMARY_FIELDS``) plus ``policy``, ``scenario``,
            ``seed_start``, ``horizon_hours``, ``elapsed_s`` and ``campaign_steps_per_s``.
        traces: per-hour arrays for plots: ``spend_frac_by_hour (H, k)`` (mean spend / budget per
            channel-hour), ``cum_spend_cny (N, H)`` and ``cum_gmv_cny (N, H)``.
    """

    episodes: list[dict]
    summary: dict
    traces: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def parse_scenarios(text: str) -> list[str]:
    """``"all"`` or a comma-separated list of scenario names -> validated list."""
    if text.strip() == "all":
        return list(SCENARIO_NAMES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError("Give at least one scenario (or 'all').")
    return [check_scenario(s) for s in names]


def rollout(
    policy: Policy, campaigns: BatchedCampaigns, seeds: np.ndarray, on_step=None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run one batch of episodes to the end of the horizon.

    Returns the final info dict (arrays with leading ``n``) and traces: ``spend_cny (n, H, k)``,
    ``cum_spend_cny (n, H)``, ``cum_gmv_cny (n, H)``.
    """
    obs, info = campaigns.reset(seeds)
    policy.reset(campaigns)
    n, horizon = len(seeds), campaigns.horizon_hours
    spend = np.zeros((n, horizon, len(campaigns.channels)))
    cum_spend, cum_gmv = np.zeros((n, horizon)), np.zeros((n, horizon))
    in_spend = bool(getattr(policy, "acts_in_spend", False))
    episode_start = np.ones(n, dtype=bool)
    for hour in range(horizon):
        if in_spend:
            obs, _, _, info = campaigns.step_spend(policy.spend(obs))
        else:
            actions, _ = policy.predict(obs, episode_start=episode_start, deterministic=True)
            obs, _, _, info = campaigns.step(np.clip(np.asarray(actions, np.float64), -1.0, 1.0))
        episode_start[:] = False
        spend[:, hour] = info["spend_cny"]
        cum_spend[:, hour], cum_gmv[:, hour] = info["spend_total"], info["gmv_total"]
        if on_step is not None:
            on_step(n)
    return info, {"spend_cny": spend, "cum_spend_cny": cum_spend, "cum_gmv_cny": cum_gmv}


def reference_gmv(
    reference: str,
    scenario: str,
    seed_start: int,
    episodes: int,
    horizon_hours: int = HORIZON_HOURS,
    batch_size: int = 256,
) -> np.ndarray:
    """Realized GMV ``(episodes,)`` CNY of the policy named ``reference`` (one of
    ``REFERENCES``) on the seeds ``seed_start, seed_start + 1, ...``, cached per process (a
    longer run of the same seeds serves a shorter one)."""
    key = (reference, scenario, int(seed_start), int(horizon_hours))
    known = _REFERENCE_CACHE.get(key)
    if known is None or len(known) < episodes:
        simulate(
            load_policy(reference),
            scenario,
            episodes,
            seed_start,
            batch_size,
            progress=False,
            horizon_hours=horizon_hours,
        )  # caches its GMV
    return _REFERENCE_CACHE[key][:episodes]


def _remember_reference(name: str, key: tuple[str, int, int], rows: list[dict]) -> None:
    """Cache a reference's own GMV per campaign (``key``: scenario, seed_start, horizon) before
    it is measured against the other references (which would evaluate it otherwise)."""
    gmv = np.array([row["gmv"] for row in rows])
    known = _REFERENCE_CACHE.get((name, *key))
    if known is None or len(known) < len(gmv):
        _REFERENCE_CACHE[(name, *key)] = gmv


def attach_references(rows: list[dict], references: dict[str, np.ndarray]) -> None:
    """Add ``<ref>_gmv`` and ``pct_of_<ref>`` (100 x GMV / the reference's, NaN where it earns
    nothing) to each episode row, for each ``reference -> GMV per row (n,)``."""
    for name, gmv in references.items():
        for row, best in zip(rows, gmv, strict=True):
            row[f"{name}_gmv"] = float(best)
            row[f"pct_of_{name}"] = float(100.0 * row["gmv"] / best) if best > 0 else float("nan")


def evaluate(
    policy: Policy,
    scenario: str,
    episodes: int,
    seed_start: int = EVAL_SEED_START,
    batch_size: int = 256,
    progress: bool | ProgressBar = True,
    horizon_hours: int = HORIZON_HOURS,
) -> EvaluationResult:
    """Evaluate ``policy`` on ``episodes`` campaigns with seeds ``seed_start, seed_start + 1, ...``
    and measure each campaign's GMV against the references' (``REFERENCES``, evaluated on the
    same seeds once per process).

    Args:
        policy: any :class:`~budgetgym.agents.policy.Policy` (or an oracle-style spend planner),
            or a Stable-Baselines3 model, wrapped by :func:`~budgetgym.agents.policy.as_policy`
            (read its note on observation normalization).
        scenario: scenario name (``SCENARIO_NAMES``) or a scenario file's path.
        episodes: number of campaigns (>= 1).
        seed_start: first seed; the default is the held-out evaluation range.
        batch_size: campaigns simulated together.
        progress: ``True`` shows the progress over campaign-hours (a bar on a terminal, a line
            per 10% otherwise: :func:`~budgetgym.agents.progress.evaluation_progress`), or an
            open bar to advance (and leave open: ``compare`` shares one over its evaluations).
        horizon_hours: episode length (shorter horizons are for tests).
    """
    run = simulate(policy, scenario, episodes, seed_start, batch_size, progress, horizon_hours)
    return measure(run, batch_size)


def simulate(
    policy: Policy,
    scenario: str,
    episodes: int,
    seed_start: int = EVAL_SEED_START,
    batch_size: int = 256,
    progress: bool | ProgressBar = True,
    horizon_hours: int = HORIZON_HOURS,
) -> EvaluationResult:
    """The rollouts of :func:`evaluate` (same arguments): episode rows without the reference
    fields, traces, and a summary of the run's facts only (``policy``, ``scenario``,
    ``seed_start``, ``horizon_hours``, ``elapsed_s``, ``campaign_steps_per_s``, ``checkpoint``
    for a policy from a run); :func:`measure` completes it. A reference's GMV is cached here."""
    check_scenario(scenario)
    policy = as_policy(policy)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if seed_start < 0:
        raise ValueError(f"seed_start must be >= 0, got {seed_start}.")
    name = str(getattr(policy, "name", type(policy).__name__))
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    seeds_all = seed_start + np.arange(episodes, dtype=np.int64)
    own_bar = progress is True
    if own_bar:
        bar = evaluation_progress(f"{name} on {scenario}", episodes * horizon_hours)
    else:
        bar = None if progress is False else progress
    started = time.perf_counter()
    rows: list[dict] = []
    spend_frac_sum = np.zeros((horizon_hours, len(campaigns.channels)))
    cum_spend, cum_gmv = [], []
    for first in range(0, episodes, batch_size):
        seeds = seeds_all[first : first + batch_size]
        info, trace = rollout(policy, campaigns, seeds, None if bar is None else bar.update)
        rows.extend(_episode_rows(info, campaigns, seeds))
        spend_frac_sum += (trace["spend_cny"] / info["budget"][:, None, None]).sum(axis=0)
        cum_spend.append(trace["cum_spend_cny"])
        cum_gmv.append(trace["cum_gmv_cny"])
    elapsed = time.perf_counter() - started
    if own_bar:
        bar.close()
    if name in REFERENCES:
        _remember_reference(name, (scenario, int(seed_start), int(horizon_hours)), rows)
    facts = {
        "policy": name,
        "scenario": scenario,
        "seed_start": int(seed_start),
        "horizon_hours": int(horizon_hours),
        "elapsed_s": round(elapsed, 3),
        "campaign_steps_per_s": round(episodes * horizon_hours / max(elapsed, 1e-9), 1),
    }
    checkpoint = getattr(policy, "checkpoint", None)
    if checkpoint is not None:
        facts["checkpoint"] = str(checkpoint)
    traces = {
        "spend_frac_by_hour": spend_frac_sum / episodes,
        "cum_spend_cny": np.concatenate(cum_spend),
        "cum_gmv_cny": np.concatenate(cum_gmv),
    }
    return EvaluationResult(rows, facts, traces)


def measure(run: EvaluationResult, batch_size: int = 256) -> EvaluationResult:
    """Complete :func:`simulate`'s result: the references' GMV on each campaign
    (:func:`attach_references`; a reference not yet evaluated on these seeds is, in batches of
    ``batch_size``; NaN on a scenario whose market the references do not model,
    :func:`~budgetgym.envs.mechanisms.unmodelled_mechanisms`: none today) and the summary fields
    (:func:`summarize`)."""
    facts, rows = run.summary, run.episodes
    scenario, seed_start, horizon = facts["scenario"], facts["seed_start"], facts["horizon_hours"]
    modelled = unmodelled_reason(scenario, MECHANISM_NAMES) is None
    attach_references(
        rows,
        {
            ref: reference_gmv(ref, scenario, seed_start, len(rows), horizon, batch_size)
            if modelled
            else np.full(len(rows), np.nan)
            for ref in REFERENCES
        },
    )
    summary = summarize(rows, facts["policy"], scenario)
    summary.update({k: v for k, v in facts.items() if k not in summary})
    summary["spend_share_by_day"] = spend_share_by_day(run.traces["spend_frac_by_hour"])
    return EvaluationResult(rows, summary, run.traces)


def spend_share_by_day(spend_frac_by_hour: np.ndarray) -> list[float]:
    """The pacing profile: mean share of the budget spent on each day of the horizon (a last,
    shorter day when the horizon is not a whole number of days), from ``(H, k)`` hourly shares."""
    hourly = spend_frac_by_hour.sum(axis=1)
    return [float(day) for day in np.add.reduceat(hourly, np.arange(0, hourly.size, 24))]


def _episode_rows(info: dict, campaigns: BatchedCampaigns, seeds: np.ndarray) -> list[dict]:
    spend, gmv, target = info["spend_total"], info["gmv_total"], info["target_roi"]
    missed = roi_target_missed(gmv, target, spend)
    roi = info["roi"]
    score = auctionnet_score(gmv, spend, target)
    shares = np.divide(
        info["spend_by_channel"],
        spend[:, None],
        out=np.zeros_like(info["spend_by_channel"]),
        where=spend[:, None] > 0,
    )
    names = campaigns.params.scenario_names
    channel_names = [c.name for c in campaigns.channels]
    rows = []
    for i, seed in enumerate(seeds):
        row = {
            "seed": int(seed),
            "scenario": names[i],
            "budget": float(info["budget"][i]),
            "target_roi": float(target[i]),
            "gmv": float(gmv[i]),
            "spend": float(spend[i]),
            "roi": float(roi[i]),
            "roi_violation": bool(missed[i]),
            "compensation": float(info["compensation"][i]),
            "budget_utilization": float(spend[i] / info["budget"][i]),
            "auctionnet_score": float(score[i]),
            "new_customers": float(info["new_customers_total"][i]),
            "conversions": float(info["conversions_total"][i]),
        }
        row.update({f"{SHARE_PREFIX}{c}": float(shares[i, k]) for k, c in enumerate(channel_names)})
        rows.append(row)
    return rows


#: Prefix of an episode row's spend share of a channel (``spend_share_<channel>``).
SHARE_PREFIX = "spend_share_"


def row_channels(rows: list[dict]) -> list[str]:
    """The channel names of episode rows (their ``spend_share_<channel>`` keys, in order)."""
    return [key[len(SHARE_PREFIX) :] for key in rows[0] if key.startswith(SHARE_PREFIX)]


def summarize(rows: list[dict], policy: str, scenario: str) -> dict:
    """Aggregate episode rows into the summary fields (means, bootstrap CIs, spend shares; the
    reference ratios for the references the rows carry, :func:`attach_references`)."""

    def col(key: str) -> np.ndarray:
        return np.array([row[key] for row in rows], dtype=np.float64)

    spend, gmv = col("spend"), col("gmv")
    missed = col("roi_violation").astype(bool)
    by_channel = {c: col(f"{SHARE_PREFIX}{c}") * spend for c in row_channels(rows)}
    total = max(spend.sum(), 1e-12)
    summary = {
        "policy": policy,
        "scenario": scenario,
        "episodes": len(rows),
        "gmv_mean": float(gmv.mean()),
        "gmv_ci95": bootstrap_ci(gmv),
        "spend_mean": float(spend.mean()),
        "roi_mean": float(col("roi").mean()),
        "roi_violation_rate": float(missed.mean()),
        "compensation_mean": float(col("compensation").mean()),
        "compensation_pct_of_spend": compensation_pct_of_spend(col("compensation"), spend),
        "budget_utilization_mean": float(col("budget_utilization").mean()),
    }
    for ref in (r for r in REFERENCES if rows and f"{r}_gmv" in rows[0]):
        best, pct = col(f"{ref}_gmv"), col(f"pct_of_{ref}")
        pct = pct[np.isfinite(pct)]
        summary[f"gmv_ratio_to_{ref}_pct"] = ratio_of_totals_pct(gmv, best)
        summary[f"gmv_ratio_to_{ref}_ci95"] = [100.0 * c for c in bootstrap_ratio_ci(gmv, best)]
        summary[f"pct_of_{ref}_mean"] = float(pct.mean()) if pct.size else float("nan")
        summary[f"pct_of_{ref}_ci95"] = bootstrap_ci(pct)
    summary.update(
        auctionnet_score_mean=float(col("auctionnet_score").mean()),
        gmv_of_met_campaigns=gmv_of_met_campaigns(gmv, missed),
        new_customers_mean=float(col("new_customers").mean()),
        spend_share={c: float(v.sum() / total) for c, v in by_channel.items()},
    )
    return summary


def write_evaluation(result: EvaluationResult, out_dir: Path) -> None:
    """Write ``episodes.csv`` (one row per episode) and ``summary.json`` into ``out_dir``."""
    import csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "episodes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result.episodes[0]))
        writer.writeheader()
        writer.writerows(result.episodes)
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")


def pareto_sweep(
    policy: Policy,
    scenario: str,
    seed_start: int,
    episodes: int,
    mults: tuple[float, ...],
    horizon_hours: int = HORIZON_HOURS,
    on_step=None,
) -> list[dict]:
    """Points (:func:`~budgetgym.agents.pareto.pareto_point`) of a rule planning to each of
    ``mults`` x its target (:class:`~budgetgym.agents.pareto.PlanToTarget`) on the campaigns
    ``seed_start .. seed_start + episodes - 1``: one rollout of ``len(mults) x episodes`` rows."""
    seeds = np.tile(seed_start + np.arange(episodes, dtype=np.int64), len(mults))
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    planned = PlanToTarget(policy, np.repeat(np.asarray(mults, dtype=np.float64), episodes))
    info, _ = rollout(planned, campaigns, seeds, on_step)
    rows = _episode_rows(info, campaigns, seeds)
    gmv = {
        ref: reference_gmv(ref, scenario, seed_start, episodes, horizon_hours) for ref in REFERENCES
    }
    attach_references(rows, {ref: np.tile(v, len(mults)) for ref, v in gmv.items()})
    return [
        pareto_point(rows[i * episodes : (i + 1) * episodes], mult, REFERENCES)
        for i, mult in enumerate(mults)
    ]


def compare(
    policy_specs: list[str],
    scenarios: list[str],
    episodes: int,
    seed_start: int,
    out_dir: Path,
    extra_policies: dict[str, Policy] | None = None,
    progress: bool = True,
    horizon_hours: int = HORIZON_HOURS,
    batch_size: int = 256,
    title: str = "",
    pareto_mults: tuple[float, ...] = PARETO_MULTS,
    pareto_episodes: int = PARETO_EPISODES,
) -> list[dict]:
    """Evaluate the privileged references (``PRIVILEGED``), every rule and the given policies,
    in that order, on the same seeds.

    Writes into ``out_dir``: ``leaderboard.json`` (list of rows: ``policy``, ``scenario``, the
    summary fields, ``checkpoint`` for a policy from a run, ``paired`` for each contender:
    :func:`~budgetgym.agents.verdict.add_paired_differences`, and ``pareto``: the points of
    :func:`pareto_sweep` on the first ``pareto_episodes`` campaigns, one per multiplier for a
    rule, the ``1.0`` one for any other policy, all taken from one rollout), ``leaderboard.md``
    (:func:`~budgetgym.agents.leaderboard.leaderboard_markdown` under ``title``), PNG plots
    (``pareto_<scenario>.png`` among them) and ``timing.json``; returns the rows. A policy that
    cannot run on a scenario (``unavailable_on(scenario)`` gives the reason: ``mmm_static``
    without fitted curves, ``planner_cc`` without a calibration, as on a user's scenario file)
    has no row there; the leaderboard names it and the reason.

    Args:
        pareto_mults: target multipliers of the sweep (empty: no sweep, no Pareto plot); the
            ``1.0`` point is read off the main evaluation.
        pareto_episodes: campaigns of the sweep (at most ``episodes``).
    """
    scenarios = [check_scenario(s) for s in scenarios]
    specs = list(dict.fromkeys([*PRIVILEGED, *BASELINE_NAMES, *policy_specs]))
    policies: dict[str, Policy] = {}
    for spec in specs:
        policy = load_policy(spec)
        label = spec if spec in BASELINE_NAMES or spec in PRIVILEGED else _label(spec, policy)
        if label in policies:  # two runs named alike (``a/seed_0``, ``b/seed_0``)
            label = f"{Path(spec).parent.name}/{label}"
        if label in policies:
            raise ValueError(f"Two policies would share the label {label!r}: rename one ({spec}).")
        policies[label] = policy
    for label, policy in (extra_policies or {}).items():
        if label in policies:
            raise ValueError(f"Extra policy {label!r} has the name of another policy.")
        policies[label] = policy
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    traces: dict[str, dict[str, dict]] = {}
    episode_rows: dict[tuple[str, str], list[dict]] = {}
    sweep_n = min(pareto_episodes, episodes)
    extra_mults = tuple(m for m in pareto_mults if m != 1.0)
    rules = [label for label in policies if label in BASELINE_NAMES]
    main_steps = len(scenarios) * len(policies) * episodes * horizon_hours
    sweep_steps = len(scenarios) * len(rules) * len(extra_mults) * sweep_n * horizon_hours
    bar = evaluation_progress("compare", main_steps + sweep_steps) if progress else None
    started = time.perf_counter()
    skipped: list[str] = []
    for scenario in scenarios:
        runs = {}
        for label, policy in policies.items():  # the references first: the others' yardstick
            reason = unavailable(policy, scenario)
            if reason is not None:
                skipped.append(f"{label} on {scenario}: {reason}")
                if bar is not None:
                    bar.update(episodes * horizon_hours)
                continue
            if bar is not None:
                bar.set_description(f"compare ({label} on {scenario})")
            progress_to = False if bar is None else bar
            runs[label] = simulate(
                policy, scenario, episodes, seed_start, batch_size, progress_to, horizon_hours
            )
        for label, run in runs.items():
            result = measure(run, batch_size)
            result.summary["policy"] = label
            rows.append(result.summary)
            traces.setdefault(scenario, {})[label] = result.traces
            episode_rows[(scenario, label)] = result.episodes
    main_s = time.perf_counter() - started
    if pareto_mults:
        for row in rows:
            own = pareto_point(
                episode_rows[(row["scenario"], row["policy"])][:sweep_n], 1.0, REFERENCES
            )
            row["pareto"] = [own]
            if row["policy"] not in rules or not extra_mults:
                continue
            if bar is not None:
                bar.set_description(f"compare (Pareto: {row['policy']} on {row['scenario']})")
            update = None if bar is None else bar.update
            policy = policies[row["policy"]]
            swept = pareto_sweep(
                policy, row["scenario"], seed_start, sweep_n, extra_mults, horizon_hours, update
            )
            row["pareto"] = sorted([own, *swept], key=lambda p: p["target_mult"])
    elapsed = time.perf_counter() - started
    if bar is not None:
        bar.close()
    add_paired_differences(rows, episode_rows)
    (out_dir / "leaderboard.json").write_text(json.dumps(rows, indent=2) + "\n")
    if skipped:
        title = "\n\n".join([title, "Not run: " + "; ".join(skipped) + "."]).strip()
    (out_dir / "leaderboard.md").write_text(leaderboard_markdown(rows, title))
    from budgetgym.agents.plots import write_plots

    write_plots(rows, traces, out_dir)
    steps = main_steps + sweep_steps
    timing = {
        "elapsed_s": round(elapsed, 2),
        "evaluation_s": round(main_s, 2),
        "pareto_s": round(elapsed - main_s, 2),
        "campaign_steps": steps,
        "campaign_steps_per_s": round(steps / max(elapsed, 1e-9), 1),
        "not_run": skipped,
    }
    (out_dir / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    return rows


def _label(spec: str, policy: Policy) -> str:
    name = getattr(policy, "name", None)
    named = name and name not in BASELINE_NAMES and name not in PRIVILEGED
    return str(name) if named else Path(spec).stem
