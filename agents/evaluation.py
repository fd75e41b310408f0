"""Evaluation harness: roll policies out on the batched core with common random numbers.

Every policy meets the same campaigns, traffic and conversion luck on a given seed, so
differences between policies are differences of decisions. ``evaluate`` returns one row per
episode and a summary; ``compare`` evaluates the baselines, the oracle and any other policies
on the same seeds and writes a leaderboard (JSON, Markdown) and plots.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.policy import ORACLE, Policy, as_policy, load_policy
from budgetgym.agents.progress import ProgressBar, evaluation_progress
from budgetgym.envs.campaigns import BatchedCampaigns, roi_target_missed
from budgetgym.envs.channels import CHANNEL_NAMES
from budgetgym.envs.scenarios import EVAL_SEED_START, HORIZON_HOURS, SCENARIO_NAMES, check_scenario

#: Summary fields shown in the leaderboard (besides ``policy`` and ``scenario``).
SUMMARY_FIELDS = (
    "episodes",
    "gmv_mean",
    "gmv_ci95",
    "spend_mean",
    "roi_mean",
    "roi_violation_rate",
    "compensation_mean",
    "budget_utilization_mean",
    "pct_of_oracle_mean",
    "pct_of_oracle_ci95",
    "gmv_ratio_to_oracle_pct",
    "gmv_ratio_to_oracle_ci95",
    "score_mean",
    "new_customers_mean",
    "spend_share",
    "spend_share_by_day",
)
BOOTSTRAP_RESAMPLES = 2000

_ORACLE_CACHE: dict[tuple[str, int, int, int], np.ndarray] = {}


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


def _resampled_means(values: np.ndarray, resamples: int) -> np.ndarray:
    """Column means of ``resamples`` bootstrap resamples of the rows of ``values`` ``(n, ...)``
    -> ``(resamples, ...)`` (fixed generator seed)."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    return values[idx].mean(axis=1)


def bootstrap_ci(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES) -> list[float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (fixed generator seed)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return [float("nan"), float("nan")]
    means = _resampled_means(values, resamples)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def bootstrap_ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES
) -> list[float]:
    """95% percentile-bootstrap interval of ``sum(numerator) / sum(denominator)``, resampling
    the pairs ``(n,)`` together (fixed generator seed)."""
    pairs = np.stack([numerator, denominator], axis=1).astype(np.float64)
    if len(pairs) == 0 or pairs[:, 1].sum() <= 0:
        return [float("nan"), float("nan")]
    means = _resampled_means(pairs, resamples)
    ratios = means[:, 0] / means[:, 1]
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


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
    spend = np.zeros((n, horizon, len(CHANNEL_NAMES)))
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


def oracle_gmv(
    scenario: str,
    seed_start: int,
    episodes: int,
    horizon_hours: int = HORIZON_HOURS,
    batch_size: int = 256,
) -> np.ndarray:
    """Realized GMV ``(episodes,)`` of the oracle on the same seeds (cached per process)."""
    key = (scenario, int(seed_start), int(episodes), int(horizon_hours))
    if key not in _ORACLE_CACHE:
        result = evaluate(
            load_policy(ORACLE),
            scenario,
            episodes,
            seed_start,
            batch_size,
            progress=False,
            horizon_hours=horizon_hours,
        )
        _ORACLE_CACHE[key] = np.array([row["gmv"] for row in result.episodes])
    return _ORACLE_CACHE[key]


def evaluate(
    policy: Policy,
    scenario: str,
    episodes: int,
    seed_start: int = EVAL_SEED_START,
    batch_size: int = 256,
    progress: bool | ProgressBar = True,
    horizon_hours: int = HORIZON_HOURS,
) -> EvaluationResult:
    """Evaluate ``policy`` on ``episodes`` campaigns with seeds ``seed_start, seed_start + 1, ...``.

    Args:
        policy: any :class:`~budgetgym.agents.policy.Policy` (or an oracle-style spend planner),
            or a Stable-Baselines3 model, wrapped by :func:`~budgetgym.agents.policy.as_policy`
            (read its note on observation normalization).
        scenario: scenario name (``SCENARIO_NAMES``).
        episodes: number of campaigns (>= 1).
        seed_start: first seed; the default is the held-out evaluation range.
        batch_size: campaigns simulated together.
        progress: ``True`` shows the progress over campaign-hours (a bar on a terminal, a line
            per 10% otherwise: :func:`~budgetgym.agents.progress.evaluation_progress`), or an
            open bar to advance (and leave open: ``compare`` shares one over its evaluations).
        horizon_hours: episode length (shorter horizons are for tests).
    """
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
    spend_frac_sum = np.zeros((horizon_hours, len(CHANNEL_NAMES)))
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

    if getattr(policy, "name", None) == ORACLE:
        reference = np.array([row["gmv"] for row in rows])
        _ORACLE_CACHE[(scenario, int(seed_start), int(episodes), int(horizon_hours))] = reference
    else:
        reference = oracle_gmv(scenario, seed_start, episodes, horizon_hours, batch_size)
    for row, best in zip(rows, reference, strict=True):
        row["oracle_gmv"] = float(best)
        row["pct_of_oracle"] = float(100.0 * row["gmv"] / best) if best > 0 else float("nan")

    summary = summarize(rows, name, scenario)
    checkpoint = getattr(policy, "checkpoint", None)
    if checkpoint is not None:
        summary["checkpoint"] = str(checkpoint)
    summary.update(
        seed_start=int(seed_start),
        horizon_hours=int(horizon_hours),
        elapsed_s=round(elapsed, 3),
        campaign_steps_per_s=round(episodes * horizon_hours / max(elapsed, 1e-9), 1),
    )
    traces = {
        "spend_frac_by_hour": spend_frac_sum / episodes,
        "cum_spend_cny": np.concatenate(cum_spend),
        "cum_gmv_cny": np.concatenate(cum_gmv),
    }
    summary["spend_share_by_day"] = spend_share_by_day(traces["spend_frac_by_hour"])
    return EvaluationResult(rows, summary, traces)


def spend_share_by_day(spend_frac_by_hour: np.ndarray) -> list[float]:
    """The pacing profile: mean share of the budget spent on each day of the horizon (a last,
    shorter day when the horizon is not a whole number of days), from ``(H, k)`` hourly shares."""
    hourly = spend_frac_by_hour.sum(axis=1)
    return [float(day) for day in np.add.reduceat(hourly, np.arange(0, hourly.size, 24))]


def _episode_rows(info: dict, campaigns: BatchedCampaigns, seeds: np.ndarray) -> list[dict]:
    spend, gmv, target = info["spend_total"], info["gmv_total"], info["target_roi"]
    missed = roi_target_missed(gmv, target, spend)
    roi = info["roi"]
    score = gmv * np.minimum(1.0, np.divide(roi, target) ** 2)
    score = np.where(spend > 0, score, gmv)
    shares = np.divide(
        info["spend_by_channel"],
        spend[:, None],
        out=np.zeros_like(info["spend_by_channel"]),
        where=spend[:, None] > 0,
    )
    names = campaigns.params.scenario_names
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
            "score": float(score[i]),
            "new_customers": float(info["new_customers_total"][i]),
            "conversions": float(info["conversions_total"][i]),
        }
        row.update({f"spend_share_{c}": float(shares[i, k]) for k, c in enumerate(CHANNEL_NAMES)})
        rows.append(row)
    return rows


def summarize(rows: list[dict], policy: str, scenario: str) -> dict:
    """Aggregate episode rows into the summary fields (means, bootstrap CIs, spend shares)."""

    def col(key: str) -> np.ndarray:
        return np.array([row[key] for row in rows], dtype=np.float64)

    spend = col("spend")
    by_channel = {c: col(f"spend_share_{c}") * spend for c in CHANNEL_NAMES}
    total = max(spend.sum(), 1e-12)
    has_pct = bool(rows) and "pct_of_oracle" in rows[0]
    pct = col("pct_of_oracle") if has_pct else np.full(len(rows), np.nan)
    return {
        "policy": policy,
        "scenario": scenario,
        "episodes": len(rows),
        "gmv_mean": float(col("gmv").mean()),
        "gmv_ci95": bootstrap_ci(col("gmv")),
        "spend_mean": float(spend.mean()),
        "roi_mean": float(col("roi").mean()),
        "roi_violation_rate": float(col("roi_violation").mean()),
        "compensation_mean": float(col("compensation").mean()),
        "budget_utilization_mean": float(col("budget_utilization").mean()),
        "pct_of_oracle_mean": float(np.nanmean(pct)) if np.isfinite(pct).any() else float("nan"),
        "pct_of_oracle_ci95": bootstrap_ci(pct[np.isfinite(pct)]),
        "gmv_ratio_to_oracle_pct": _ratio_of_totals(rows),
        "gmv_ratio_to_oracle_ci95": (
            [100.0 * c for c in bootstrap_ratio_ci(col("gmv"), col("oracle_gmv"))]
            if has_pct
            else [float("nan"), float("nan")]
        ),
        "score_mean": float(col("score").mean()),
        "new_customers_mean": float(col("new_customers").mean()),
        "spend_share": {c: float(v.sum() / total) for c, v in by_channel.items()},
    }


def _ratio_of_totals(rows: list[dict]) -> float:
    """``100 * sum(GMV) / sum(oracle GMV)``: robust to episodes where the oracle spends little."""
    if not rows or "oracle_gmv" not in rows[0]:
        return float("nan")
    oracle = sum(row["oracle_gmv"] for row in rows)
    return float(100.0 * sum(row["gmv"] for row in rows) / oracle) if oracle > 0 else float("nan")


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
) -> list[dict]:
    """Evaluate every baseline, the oracle and the given policies on the same seeds.

    Writes ``leaderboard.json`` (list of rows: ``policy``, ``scenario``, the summary fields,
    ``checkpoint`` for a policy from a run, and, for policies other than the rules and the
    oracle, ``paired``: see :func:`add_paired_differences`), ``leaderboard.md`` (``title``,
    then one table per scenario, best score first) and PNG plots into ``out_dir``; returns the
    rows.
    """
    scenarios = [check_scenario(s) for s in scenarios]
    specs = list(dict.fromkeys([*BASELINE_NAMES, ORACLE, *policy_specs]))
    policies: dict[str, Policy] = {}
    for spec in specs:
        policy = load_policy(spec)
        label = spec if spec in BASELINE_NAMES or spec == ORACLE else _label(spec, policy)
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
    started = time.perf_counter()
    # The oracle first: its GMV is every other policy's reference on these seeds.
    order = [ORACLE] + [label for label in policies if label != ORACLE]
    total = len(scenarios) * len(order) * episodes * horizon_hours
    bar = evaluation_progress("compare", total) if progress else None
    for scenario in scenarios:
        for label in order:
            if bar is not None:
                bar.set_description(f"compare ({label} on {scenario})")
            result = evaluate(
                policies[label],
                scenario,
                episodes,
                seed_start,
                batch_size,
                False if bar is None else bar,
                horizon_hours,
            )
            result.summary["policy"] = label
            rows.append(result.summary)
            traces.setdefault(scenario, {})[label] = result.traces
            episode_rows[(scenario, label)] = result.episodes
    elapsed = time.perf_counter() - started
    if bar is not None:
        bar.close()
    add_paired_differences(rows, episode_rows)
    (out_dir / "leaderboard.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "leaderboard.md").write_text(leaderboard_markdown(rows, title))
    from budgetgym.agents.plots import write_plots

    write_plots(rows, traces, out_dir)
    steps = len(rows) * episodes * horizon_hours
    timing = {
        "elapsed_s": round(elapsed, 2),
        "campaign_steps": steps,
        "campaign_steps_per_s": round(steps / max(elapsed, 1e-9), 1),
    }
    (out_dir / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    return rows


def _label(spec: str, policy: Policy) -> str:
    name = getattr(policy, "name", None)
    return str(name) if name and name not in BASELINE_NAMES and name != ORACLE else Path(spec).stem


def _best_rule(group: list[dict]) -> dict | None:
    """The rule baseline with the most mean GMV among one scenario's rows (None without rules)."""
    rules = [r for r in group if r["policy"] in BASELINE_NAMES]
    return max(rules, key=lambda r: r["gmv_mean"]) if rules else None


def _is_contender(row: dict) -> bool:
    return row["policy"] not in BASELINE_NAMES and row["policy"] != ORACLE


def add_paired_differences(
    rows: list[dict], episode_rows: dict[tuple[str, str], list[dict]]
) -> None:
    """Add ``paired`` to each summary row of a policy other than the rules and the oracle: its
    per-campaign difference from the best rule by mean GMV on the same seeds (common random
    numbers, so the campaigns' own luck cancels and the interval is far narrower than the two
    GMV intervals suggest).

    ``paired``: ``rule``, ``gmv_diff_mean`` (CNY per campaign), ``gmv_diff_ci95`` (bootstrap),
    ``gmv_diff_pct`` and ``gmv_diff_pct_ci95`` (the same in % of the rule's mean GMV),
    ``missed_only_policy`` / ``missed_only_rule`` (campaigns below their ROI target under one
    of the two only). An interval containing 0 is a tie at this many campaigns.

    Args:
        rows: summaries, one per (scenario, policy); changed in place.
        episode_rows: ``(scenario, policy) -> evaluate(...).episodes``, in seed order.
    """
    for scenario in dict.fromkeys(row["scenario"] for row in rows):
        group = [r for r in rows if r["scenario"] == scenario]
        rule = _best_rule(group)
        if rule is None:
            continue
        theirs = episode_rows[(scenario, rule["policy"])]
        for row in filter(_is_contender, group):
            ours = episode_rows[(scenario, row["policy"])]
            if [e["seed"] for e in ours] != [e["seed"] for e in theirs]:
                raise ValueError(f"{row['policy']} and {rule['policy']} met different seeds.")
            pairs = list(zip(ours, theirs, strict=True))
            diff = np.array([a["gmv"] - b["gmv"] for a, b in pairs])
            missed = np.array([[a["roi_violation"], b["roi_violation"]] for a, b in pairs])
            ci = bootstrap_ci(diff)
            scale = 100.0 / rule["gmv_mean"] if rule["gmv_mean"] > 0 else float("nan")
            row["paired"] = {
                "rule": rule["policy"],
                "gmv_diff_mean": float(diff.mean()),
                "gmv_diff_ci95": ci,
                "gmv_diff_pct": float(diff.mean() * scale),
                "gmv_diff_pct_ci95": [c * scale for c in ci],
                "missed_only_policy": int((missed[:, 0] & ~missed[:, 1]).sum()),
                "missed_only_rule": int((missed[:, 1] & ~missed[:, 0]).sum()),
            }


def versus_best_rule(rows: list[dict]) -> list[dict]:
    """Each policy that is neither a rule baseline nor the oracle against the best rule by mean
    GMV, per scenario: the bar a learned policy has to clear (more GMV, no more ROI misses).

    Returns one dict per (policy, scenario): ``policy, scenario, rule, gmv_ratio`` (policy's mean
    GMV / the rule's), ``roi_violation_rate, rule_roi_violation_rate``, ``beats_rule`` and the
    row's ``paired`` differences when it has them (:func:`add_paired_differences`).
    """
    out = []
    for scenario in dict.fromkeys(row["scenario"] for row in rows):
        group = [r for r in rows if r["scenario"] == scenario]
        rule = _best_rule(group)
        if rule is None:
            continue
        for row in filter(_is_contender, group):
            out.append(
                {
                    "policy": row["policy"],
                    "scenario": scenario,
                    "rule": rule["policy"],
                    "gmv_ratio": row["gmv_mean"] / rule["gmv_mean"],
                    "roi_violation_rate": row["roi_violation_rate"],
                    "rule_roi_violation_rate": rule["roi_violation_rate"],
                    "beats_rule": bool(
                        row["gmv_mean"] > rule["gmv_mean"]
                        and row["roi_violation_rate"] <= rule["roi_violation_rate"]
                    ),
                    **({"paired": row["paired"]} if "paired" in row else {}),
                }
            )
    return out


def versus_best_rule_markdown(rows: list[dict]) -> str:
    """:func:`versus_best_rule` as a Markdown section ("" when no policy but rules and oracle)."""
    verdicts = versus_best_rule(rows)
    if not verdicts:
        return ""
    lines = [
        "### Against the best rule",
        "",
        "Each policy against the rule with the most GMV in the scenario: it beats the rule with "
        "more GMV and no more ROI misses. Paired: the per-campaign difference on the same "
        "seeds, with its 95% bootstrap interval in % of the rule's GMV (an interval across 0 is "
        "a tie at this many campaigns), and the campaigns only one of the two left below target.",
        "",
        "| policy | scenario | best rule by GMV | GMV / rule's GMV | "
        "GMV difference, paired [95% CI] | ROI miss (policy vs rule) | "
        "missed by policy only / rule only | beats it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        paired = v.get("paired")
        diff = only = "–"
        if paired:
            lo, hi = paired["gmv_diff_pct_ci95"]
            diff = f"{paired['gmv_diff_pct']:+.2f}% [{lo:+.2f}, {hi:+.2f}]"
            only = f"{paired['missed_only_policy']} / {paired['missed_only_rule']}"
        lines.append(
            f"| {v['policy']} | {v['scenario']} | {v['rule']} | {v['gmv_ratio']:.3f}x | {diff} | "
            f"{100 * v['roi_violation_rate']:.1f}% vs {100 * v['rule_roi_violation_rate']:.1f}% | "
            f"{only} | {'yes' if v['beats_rule'] else 'no'} |"
        )
    lines.append("")
    return "\n".join(lines)


def leaderboard_markdown(rows: list[dict], header: str = "") -> str:
    """One Markdown table per scenario, rows sorted by ROI-penalized score (best first), then
    each non-rule policy against the best rule (:func:`versus_best_rule_markdown`). The
    checkpoint of each policy from a run is named under ``header``.

    GMV against the oracle comes twice, each column named by its ratio: the ratio of totals
    (sum of GMV / sum of the oracle's GMV over the campaigns) and the mean over campaigns of
    each one's GMV / the oracle's (above 100% where a policy buys GMV below its ROI target on
    campaigns where the oracle, bound by the target, spends little).
    """
    lines = [header, ""] if header else []
    checkpoints = {r["policy"]: r["checkpoint"] for r in rows if r.get("checkpoint")}
    if checkpoints:
        lines += ["Checkpoints evaluated:", ""]
        lines += [f"- `{policy}`: `{text}`" for policy, text in checkpoints.items()]
        lines.append("")
    for scenario in dict.fromkeys(row["scenario"] for row in rows):
        group = sorted(
            (r for r in rows if r["scenario"] == scenario), key=lambda r: -r["score_mean"]
        )
        lines += [
            f"### {scenario} ({group[0]['episodes']} episodes)",
            "",
            "| # | policy | GMV mean [95% CI] | GMV % of oracle, ratio of totals | "
            "GMV % of oracle, mean per campaign | score | ROI | ROI miss | compensation | "
            "budget used | new customers |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rank, r in enumerate(group, 1):
            lo, hi = r["gmv_ci95"]
            lines.append(
                f"| {rank} | {r['policy']} | {r['gmv_mean']:,.0f} [{lo:,.0f}, {hi:,.0f}] | "
                f"{r['gmv_ratio_to_oracle_pct']:.1f}% | {r['pct_of_oracle_mean']:.1f}% | "
                f"{r['score_mean']:,.0f} | {r['roi_mean']:.2f} | "
                f"{100 * r['roi_violation_rate']:.0f}% | {r['compensation_mean']:,.0f} | "
                f"{100 * r['budget_utilization_mean']:.0f}% | {r['new_customers_mean']:,.0f} |"
            )
        lines.append("")
    versus = versus_best_rule_markdown(rows)
    return "\n".join([*lines, versus] if versus else lines)
