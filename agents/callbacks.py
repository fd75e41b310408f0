"""SB3 callbacks for budgetgym training: validation with domain metrics, checkpoints, progress.

* :class:`ValidationCallback` (``EvalCallback``-style): every ``eval_freq`` env steps, runs the
  deterministic policy on fixed validation campaigns (seeds from 900,000), logs ``eval/gmv``,
  ``eval/roi``, ``eval/roi_violation_rate``, ``eval/gmv_ratio_to_planner_pct`` and
  ``eval/gmv_ratio_to_oracle_pct`` (sum of GMV / sum of the reference's GMV over every
  validation campaign), ``eval/pct_of_planner`` and ``eval/pct_of_oracle`` (the mean over
  campaigns of each one's ratio), ``eval/compensation_pct_of_spend``,
  ``eval/auctionnet_score``, ``eval/gmv_of_met_campaigns``, ``eval/budget_utilization``,
  ``eval/spend_share/<channel>`` and ``eval/mean_reward``, plus constant ``reference/*`` scalars
  for the best rule baseline (:func:`~budgetgym.agents.verdict.best_rule`), the planner and the
  oracle on the same campaigns, and saves the best model (by mean episode reward) with its
  normalization statistics to ``best/``.
* :class:`RunCheckpointCallback`: SB3's ``CheckpointCallback`` writing budgetgym checkpoints
  (model + optimizer + ``VecNormalize`` + metadata together) and pruning old ones.
* :class:`ProgressCallback`: a rich progress bar (plain lines when the output is not a terminal)
  with elapsed/remaining time and the latest validation metrics.
* :class:`StopOnRequestCallback`: ends ``learn`` cleanly at the next step after Ctrl-C.
* :class:`HParamsCallback`: logs the hyperparameters to TensorBoard's HParams tab.
* :class:`ScenarioAdvantageNorm`: standardizes PPO's advantages scenario by scenario before each
  update (``scenario_advantage_norm``).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.logger import HParam

from budgetgym.agents.checkpoints import ObsNormalizer, RunPaths, SB3Policy, save_checkpoint
from budgetgym.agents.evaluation import REFERENCES
from budgetgym.agents.metrics import (
    auctionnet_score,
    compensation_pct_of_spend,
    gmv_of_met_campaigns,
    ratio_of_totals_pct,
)
from budgetgym.agents.policy import PLANNER_CC, load_policy, unavailable
from budgetgym.agents.progress import LineProgress, is_terminal
from budgetgym.agents.residual import residual_base_of, vec_env_stack, venv_channels
from budgetgym.agents.verdict import best_rule
from budgetgym.agents.wrappers import training_guard
from budgetgym.envs import EVAL_SEED_START, VALIDATION_SEED_START, BatchedCampaigns
from budgetgym.envs.campaigns import roi_target_missed
from budgetgym.envs.sb3_vec_env import BudgetVecEnv

# --------------------------------------------------------------------------------------------
# Rollouts and domain metrics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeBatch:
    """Per-campaign outcomes of one batched rollout (every array ``(n,)`` unless noted)."""

    seeds: np.ndarray
    reward: np.ndarray  # episode return under the training reward
    gmv_cny: np.ndarray
    spend_cny: np.ndarray
    budget_cny: np.ndarray
    roi: np.ndarray
    target_roi: np.ndarray
    spend_by_channel_cny: np.ndarray  # (n, n_channels)
    compensation_cny: np.ndarray  # paid back by the platform for a missed target
    channel_names: tuple[str, ...]  # the columns of spend_by_channel_cny

    @property
    def roi_violation(self) -> np.ndarray:
        """Campaigns whose delivered ROI is below the target (none that spent nothing)."""
        return roi_target_missed(self.gmv_cny, self.target_roi, self.spend_cny)


def rollout(
    policy: Any,
    scenario: str,
    seeds: np.ndarray,
    reward_mode: str = "gmv_roi_penalty",
    roi_penalty_coef: float = 1.0,
    horizon_hours: int = 168,
) -> EpisodeBatch:
    """Run ``policy`` (a ``Policy``) deterministically on one campaign per seed, all at once.

    Policies with ``acts_in_spend`` (the oracle) are stepped through ``step_spend``.
    """
    campaigns = BatchedCampaigns(scenario, reward_mode, roi_penalty_coef, horizon_hours)
    obs, _ = campaigns.reset(np.asarray(seeds))
    policy.reset(campaigns)
    total = np.zeros(len(seeds))
    in_spend = bool(getattr(policy, "acts_in_spend", False))
    done = np.zeros(len(seeds), dtype=bool)
    info: dict[str, np.ndarray] = {}
    while not done.all():
        if in_spend:
            obs, reward, done, info = campaigns.step_spend(policy.spend(obs))
        else:
            actions, _ = policy.predict(obs, deterministic=True)
            obs, reward, done, info = campaigns.step(actions)
        total += reward
    return EpisodeBatch(
        seeds=np.asarray(seeds),
        reward=total,
        gmv_cny=info["gmv_total"].astype(np.float64),
        spend_cny=info["spend_total"].astype(np.float64),
        budget_cny=np.asarray(info["budget"], dtype=np.float64),
        roi=info["roi"].astype(np.float64),
        target_roi=np.asarray(info["target_roi"], dtype=np.float64),
        spend_by_channel_cny=info["spend_by_channel"].astype(np.float64),
        compensation_cny=np.asarray(info["compensation"], dtype=np.float64),
        channel_names=tuple(c.name for c in campaigns.channels),
    )


def summarize(
    batch: EpisodeBatch, reference_gmv_cny: dict[str, np.ndarray] | None = None
) -> dict[str, float]:
    """Domain metrics of a rollout (means over campaigns, the definitions of
    :mod:`budgetgym.agents.metrics`); keys match the ``eval/`` scalars. ``reference_gmv_cny``:
    ``name -> GMV (n,)`` of each reference on the same campaigns (``pct_of_<name>``)."""
    spend_total = max(batch.spend_cny.sum(), 1e-12)
    out = {
        "mean_reward": float(batch.reward.mean()),
        "gmv": float(batch.gmv_cny.mean()),
        "roi": float(batch.roi.mean()),
        "roi_violation_rate": float(batch.roi_violation.mean()),
        "compensation_pct_of_spend": compensation_pct_of_spend(
            batch.compensation_cny, batch.spend_cny
        ),
        "auctionnet_score": float(
            auctionnet_score(batch.gmv_cny, batch.spend_cny, batch.target_roi).mean()
        ),
        "gmv_of_met_campaigns": gmv_of_met_campaigns(batch.gmv_cny, batch.roi_violation),
        "budget_utilization": float((batch.spend_cny / batch.budget_cny).mean()),
    }
    for name, reference in (reference_gmv_cny or {}).items():
        ratio = batch.gmv_cny / np.maximum(reference, 1e-9)
        out[f"pct_of_{name}"] = float(100.0 * ratio.mean())
    shares = batch.spend_by_channel_cny.sum(axis=0) / spend_total
    for name, share in zip(batch.channel_names, shares, strict=True):
        out[f"spend_share/{name}"] = float(share)
    return out


def ratio_of_totals(batches: list[EpisodeBatch], reference_gmv_cny: list[np.ndarray]) -> float:
    """``100 * sum(GMV) / sum(reference GMV)`` over every campaign of ``batches`` (the
    reference's GMV per campaign in the same order): the policy's share of what the reference
    earns in all."""
    return ratio_of_totals_pct(
        np.concatenate([batch.gmv_cny for batch in batches]),
        np.concatenate([np.asarray(ref) for ref in reference_gmv_cny]),
    )


def validation_seeds(n_episodes: int) -> np.ndarray:
    """The fixed validation campaigns: ``900,000 .. 900,000 + n - 1`` (``ValueError`` if ``n``
    is below 1 or would reach the held-out range)."""
    if n_episodes < 1 or VALIDATION_SEED_START + n_episodes > EVAL_SEED_START:
        raise ValueError(
            f"validation episodes must be 1..{EVAL_SEED_START - VALIDATION_SEED_START}, "
            f"got {n_episodes}."
        )
    return VALIDATION_SEED_START + np.arange(n_episodes, dtype=np.int64)


def mean_over_scenarios(per_scenario: dict[str, dict[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric over scenarios (every scenario has the same episodes),
    over the scenarios where it is defined (``gmv_of_met_campaigns`` is NaN where no campaign
    met its target; NaN where it is defined nowhere)."""
    keys = next(iter(per_scenario.values())).keys()
    out = {}
    for key in keys:
        values = np.array([m[key] for m in per_scenario.values() if key in m], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[key] = float(finite.mean()) if finite.size else float("nan")
    return out


# --------------------------------------------------------------------------------------------
# Reference policies on the validation campaigns (computed once per run, cached on disk)
# --------------------------------------------------------------------------------------------
def baseline_policies() -> dict[str, Any]:
    """The rule baselines, by name (empty if the baselines module is unavailable)."""
    try:
        from budgetgym.agents import baselines
    except ImportError:
        return {}
    registry = getattr(baselines, "BASELINES", None)
    if not isinstance(registry, dict):
        return {}
    return {name: factory() for name, factory in registry.items()}


def validation_metrics(
    policy: Any,
    scenarios: tuple[str, ...],
    seeds: np.ndarray,
    env_kwargs: dict[str, Any],
    reference_gmv_cny: dict[str, dict[str, np.ndarray]],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Roll ``policy`` out on ``seeds`` in each scenario: the metrics averaged over scenarios
    (:func:`mean_over_scenarios`) with ``gmv_ratio_to_<ref>_pct`` over every campaign for each
    reference that covers all scenarios, and the metrics per scenario.

    Args:
        reference_gmv_cny: ``reference -> scenario -> GMV per campaign (n,)`` on the same seeds.
    """
    batches = {s: rollout(policy, s, seeds, **env_kwargs) for s in scenarios}
    per_scenario = {
        s: summarize(batch, {ref: gmv[s] for ref, gmv in reference_gmv_cny.items() if s in gmv})
        for s, batch in batches.items()
    }
    metrics = mean_over_scenarios(per_scenario)
    for ref, gmv in reference_gmv_cny.items():
        if all(s in gmv for s in batches):
            metrics[f"gmv_ratio_to_{ref}_pct"] = ratio_of_totals(
                list(batches.values()), [gmv[s] for s in batches]
            )
    return metrics, per_scenario


def compute_references(
    scenarios: tuple[str, ...],
    n_episodes: int,
    env_kwargs: dict[str, Any],
    cache: Path | None = None,
) -> dict[str, Any]:
    """The references' GMV per validation campaign and the best baseline's metrics.

    Returns ``{"<ref>_gmv": {scenario: [...]}, "<ref>_gmv_mean": float`` for each of
    ``REFERENCES``, ``"best_baseline": name`` (:func:`~budgetgym.agents.verdict.best_rule`,
    with ``planner_cc``'s miss rate on the same campaigns), ``"baseline_metrics": {name:
    metrics averaged over scenarios}``, ``"planner_cc_metrics"``} (None, as are the rules that
    cannot run on every scenario, where ``planner_cc`` has no calibration: a user's scenario
    file). Cached as JSON under a key of the campaigns, the task and the references.
    """
    key = {
        "scenarios": list(scenarios),
        "n_episodes": n_episodes,
        "references": [*REFERENCES, PLANNER_CC],
        **env_kwargs,
    }
    if cache is not None and cache.is_file():
        try:
            cached = json.loads(cache.read_text())
        except ValueError:  # not JSON, or not text: computed anew
            cached = None
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached
    seeds = validation_seeds(n_episodes)
    reference_gmv = {
        ref: {
            s: rollout(load_policy(ref), s, seeds, **env_kwargs).gmv_cny
            for s in scenarios
            if unavailable(load_policy(ref), s) is None  # not on a market it does not model
        }
        for ref in REFERENCES
    }

    def runs_everywhere(policy: Any) -> bool:
        return all(unavailable(policy, s) is None for s in scenarios)

    baseline_metrics = {
        name: validation_metrics(policy, scenarios, seeds, env_kwargs, reference_gmv)[0]
        for name, policy in baseline_policies().items()
        if runs_everywhere(policy)
    }
    cc_policy = load_policy(PLANNER_CC)
    planner_cc = (
        validation_metrics(cc_policy, scenarios, seeds, env_kwargs, reference_gmv)[0]
        if runs_everywhere(cc_policy)
        else None
    )
    ranked_metrics = {
        **baseline_metrics,
        **({} if planner_cc is None else {PLANNER_CC: planner_cc}),
    }
    rows = [
        {"policy": name, "scenario": "validation", "gmv_mean": m["gmv"],
         "roi_violation_rate": m["roi_violation_rate"],
         "auctionnet_score_mean": m["auctionnet_score"]}
        for name, m in ranked_metrics.items()
    ]  # fmt: skip
    best = best_rule(rows)
    result: dict[str, Any] = {"key": key}
    for ref, gmv in reference_gmv.items():
        result[f"{ref}_gmv"] = {s: v.tolist() for s, v in gmv.items()}
        means = [v.mean() for v in gmv.values()]
        result[f"{ref}_gmv_mean"] = float(np.mean(means)) if means else float("nan")
    result.update(
        best_baseline=None if best is None else best["policy"],
        baseline_metrics=baseline_metrics,
        planner_cc_metrics=planner_cc,
    )
    if cache is not None:
        cache.write_text(json.dumps(result))
    return result


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------
class ValidationCallback(BaseCallback):
    """Periodic deterministic evaluation on validation campaigns with domain metrics.

    Args:
        run: the run directory (``best/`` and ``evaluations.jsonl`` are written there).
        scenarios: scenarios to evaluate (metrics are averaged over them).
        n_episodes: validation campaigns per scenario.
        eval_freq: env steps between evaluations (0: only at the end of training).
        env_kwargs: ``reward_mode``, ``roi_penalty_coef``, ``horizon_hours`` of the task.
        references: computed by :func:`compute_references` (None: no reference scalars).

    ``on_evaluate``, when set, is called with the metrics after each evaluation (once they are
    logged and ``best/`` is saved).
    """

    def __init__(
        self,
        run: RunPaths,
        scenarios: tuple[str, ...],
        n_episodes: int,
        eval_freq: int,
        env_kwargs: dict[str, Any],
        references: dict[str, Any] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.run = run
        self.scenarios = scenarios
        self.seeds = validation_seeds(n_episodes)
        self.eval_freq = eval_freq
        self.env_kwargs = env_kwargs
        self.references = references
        self.best_mean_reward = -np.inf
        self.last_metrics: dict[str, float] = {}
        self._last_eval_step = 0
        self.last_eval_step: int | None = None
        self.on_evaluate: Callable[[dict[str, float]], None] | None = None

    def restore(self, best_mean_reward: float, last_eval_step: int) -> None:
        """Continue a resumed run: keep its best score and evaluation schedule."""
        self.best_mean_reward = best_mean_reward
        self._last_eval_step = last_eval_step

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps - self._last_eval_step >= self.eval_freq:
            self.evaluate()
        return True

    def evaluate(self) -> dict[str, float]:
        """Evaluate now, log and record; save ``best/`` on a new best mean reward."""
        self._last_eval_step = self.num_timesteps
        self.last_eval_step = self.num_timesteps
        vecnorm = self.model.get_vec_normalize_env()
        normalizer = ObsNormalizer.from_vecnormalize(vecnorm)
        channels = venv_channels(vecnorm)
        policy = SB3Policy(
            self.model, normalizer, "current", residual_base_of(vecnorm), None, channels,
            training_guard(vecnorm),
        )  # fmt: skip
        known = self.references or {}
        refs = {
            ref: {s: np.asarray(v) for s, v in known[f"{ref}_gmv"].items()}
            for ref in REFERENCES
            if f"{ref}_gmv" in known
        }
        metrics, per_scenario = validation_metrics(
            policy, self.scenarios, self.seeds, self.env_kwargs, refs
        )
        for key, value in metrics.items():
            self.logger.record(f"eval/{key}", value)
        if len(self.scenarios) > 1:
            for scenario, values in per_scenario.items():
                self.logger.record(f"eval_{scenario}/gmv", values["gmv"])
                violation = values["roi_violation_rate"]
                self.logger.record(f"eval_{scenario}/roi_violation_rate", violation)
        self._record_references()
        new_best = metrics["mean_reward"] > self.best_mean_reward
        if new_best:
            self.best_mean_reward = metrics["mean_reward"]
            save_checkpoint(
                self.model,
                vecnorm,
                self.run.best,
                {"best_mean_reward": self.best_mean_reward, "eval_metrics": metrics},
            )
        self.logger.record("eval/best_mean_reward", self.best_mean_reward)
        self.logger.dump(self.num_timesteps)
        with open(self.run.evaluations, "a") as handle:
            record = {"num_timesteps": self.num_timesteps, "time": time.time(), **metrics}
            handle.write(json.dumps({**record, "new_best": bool(new_best)}) + "\n")
        self.last_metrics = metrics
        if self.on_evaluate is not None:
            self.on_evaluate(metrics)
        return metrics

    def _record_references(self) -> None:
        refs = self.references
        if not refs:
            return
        for ref in REFERENCES:
            self.logger.record(f"reference/{ref}_gmv", refs[f"{ref}_gmv_mean"])
        best = refs.get("best_baseline")
        if best is not None:
            keys = ("gmv", "roi", "roi_violation_rate", "auctionnet_score", "pct_of_oracle",
                    "gmv_ratio_to_oracle_pct", "gmv_ratio_to_planner_pct")  # fmt: skip
            for key in (*keys, "mean_reward"):
                value = refs["baseline_metrics"][best].get(key)
                if value is not None:
                    self.logger.record(f"reference/best_baseline_{key}", value)


class RunCheckpointCallback(CheckpointCallback):
    """``CheckpointCallback`` that saves budgetgym checkpoints and keeps the last ``keep_last``.

    ``save_freq`` counts env steps of all campaigns (SB3's counts calls, i.e. divides by
    ``n_envs``); model, optimizer state and ``VecNormalize`` are saved together every time.
    Pruning leaves a checkpoint with corrupt metadata in place and reports it once to ``log``.
    """

    def __init__(
        self,
        run: RunPaths,
        save_freq: int,
        keep_last: int = 3,
        save_replay_buffer: bool = False,
        extra_meta: Callable[[], dict[str, Any]] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        super().__init__(
            save_freq=max(save_freq, 1),
            save_path=str(run.checkpoints),
            save_replay_buffer=save_replay_buffer,
            save_vecnormalize=True,
        )
        self.run = run
        self.every = save_freq
        self.keep_last = keep_last
        self.extra_meta = extra_meta
        self.log = log
        self._reported: set[Path] = set()
        self._last_save = 0

    def _init_callback(self) -> None:
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        self._last_save = self.model.num_timesteps  # not 0 when resuming

    def _on_step(self) -> bool:
        if self.every > 0 and self.num_timesteps - self._last_save >= self.every:
            self.save_now(self.run.checkpoint(self.num_timesteps))
        return True

    def save_now(self, directory: Path) -> Path:
        """Save a checkpoint to ``directory`` now and prune old periodic ones."""
        self._last_save = self.num_timesteps
        meta = self.extra_meta() if self.extra_meta else {}
        path = save_checkpoint(
            self.model,
            self.model.get_vec_normalize_env(),
            directory,
            meta,
            replay_buffer=self.save_replay_buffer,
        )
        intact, skipped = self.run.scan_checkpoints()
        for old in intact[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for bad in skipped:
            if bad.directory not in self._reported:
                self._reported.add(bad.directory)
                self.log(f"Pruning skips {bad.directory}: {bad.reason}")
        return path


class StopOnRequestCallback(BaseCallback):
    """Returns ``False`` (ending ``learn`` cleanly) once :meth:`request_stop` was called."""

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()

    def request_stop(self) -> None:
        self.stop.set()

    def _on_step(self) -> bool:
        return not self.stop.is_set()


def campaign_scenarios(venv: Any) -> np.ndarray:
    """Scenario name of the campaign each env of a training VecEnv stack plays now,
    ``(num_envs,)`` strings: read from the ``BudgetVecEnv`` (or the list of them) below the
    wrappers."""
    for layer in vec_env_stack(venv):
        if isinstance(layer, BudgetVecEnv):
            return np.array(layer.campaigns.params.scenario_names)
        envs = getattr(layer, "envs", None)
        if isinstance(envs, list) and envs and all(isinstance(e, BudgetVecEnv) for e in envs):
            return np.array([n for e in envs for n in e.campaigns.params.scenario_names])
    raise ValueError("No BudgetVecEnv below this VecEnv: cannot tell the campaigns' scenarios.")


class ScenarioAdvantageNorm(BaseCallback):
    """Standardizes the advantages of each scenario's campaigns in a PPO rollout, before the
    update (SB3 then normalizes each minibatch as usual).

    With a mix of scenarios, one minibatch-wide scale lets the noisiest scenario set the step
    size of all: late in training the high-price campaigns' advantages (conversions days after
    the click) spread 2-6x wider than the others', so their noise dominates the gradient shared
    by every scenario. Standardizing per scenario gives each an equal say, as per-task
    normalization does in multi-task RL (PopArt, Hessel et al. 2019; here on the policy's
    advantages only, the critic's targets are untouched). The scenario is training-side
    knowledge: the policy never sees it.
    """

    def _on_rollout_start(self) -> None:
        self._rows: list[np.ndarray] = []
        self._current = campaign_scenarios(self.training_env)

    def _on_step(self) -> bool:
        # This step's campaigns; an episode that just ended was replaced by the next one.
        self._rows.append(self._current)
        self._current = campaign_scenarios(self.training_env)
        return True

    def _on_rollout_end(self) -> None:
        advantages = self.model.rollout_buffer.advantages  # (n_steps, n_envs)
        scenarios = np.stack(self._rows)
        if scenarios.shape != advantages.shape:
            raise RuntimeError(
                f"Recorded scenarios {scenarios.shape} do not match advantages {advantages.shape}."
            )
        advantages[:] = standardize_by_group(advantages, scenarios)


def standardize_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` standardized (mean 0, sd 1) within each group of equal ``groups`` labels;
    a group of one value, or of equal values, is centred only."""
    out = np.empty_like(values)
    for group in np.unique(groups):
        members = groups == group
        part = values[members]
        out[members] = (part - part.mean()) / (part.std() + 1e-8)
    return out


def training_progress(label: str, *extra_fields: str, stream: TextIO | None = None) -> Any:
    """A rich progress bar for training on ``stream`` (default stdout): label, bar, steps done /
    total, the ``extra_fields`` (rich column templates), elapsed and remaining time, and the
    latest validation metrics (task field ``metrics``). For terminals (:func:`is_terminal`)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(field) for field in extra_fields),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=Console(file=stream),
        refresh_per_second=4,
    )


class ProgressCallback(BaseCallback):
    """Training progress: steps, steps/s, elapsed and remaining time, latest validation metrics.

    On a terminal a rich bar; otherwise (a log file, CI) one plain line per
    ``LINE_EVERY_PCT`` percent of the steps (:class:`~budgetgym.agents.progress.LineProgress`),
    so that logs hold no carriage returns.

    Args:
        total_timesteps: the overall target (the bar starts at the model's current step).
        validation: source of ``last_metrics`` shown next to the bar.
        report: optional function called with ``(num_timesteps, metrics)`` instead of drawing a
            bar (used by parallel seed workers to report to the parent process).
        report_every: env steps between calls to ``report``.
        stream: where the bar or the lines go (default: ``sys.stdout`` at training start).
    """

    def __init__(
        self,
        total_timesteps: int,
        validation: ValidationCallback | None = None,
        report: Callable[[int, dict[str, float]], None] | None = None,
        report_every: int = 10_000,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.total = total_timesteps
        self.validation = validation
        self.report = report
        self.report_every = report_every
        self.stream = stream
        self._progress: Any = None
        self._task: Any = None
        self._lines: LineProgress | None = None
        self._last_report = 0

    def _on_training_start(self) -> None:
        if self.report is not None:
            self.report(self.num_timesteps, {})
            return
        stream = sys.stdout if self.stream is None else self.stream
        self._start = (time.time(), self.num_timesteps)
        if not is_terminal(stream):
            self._lines = LineProgress("train", self.total, stream, initial=self.num_timesteps)
            return
        self._progress = training_progress("[bold]train", "{task.fields[speed]}", stream=stream)
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=self.total, completed=self.num_timesteps, speed="", metrics=""
        )

    def _on_step(self) -> bool:
        metrics = self.validation.last_metrics if self.validation else {}
        if self.report is not None:
            if self.num_timesteps - self._last_report >= self.report_every:
                self._last_report = self.num_timesteps
                self.report(self.num_timesteps, metrics)
            return True
        elapsed = max(time.time() - self._start[0], 1e-9)
        speed = f"{(self.num_timesteps - self._start[1]) / elapsed:,.0f} steps/s"
        if self._lines is not None:
            self._lines.set_postfix_str(" | ".join(filter(None, [speed, format_metrics(metrics)])))
            self._lines.update(self.num_timesteps - self._lines.n)
            return True
        self._progress.update(
            self._task, completed=self.num_timesteps, speed=speed, metrics=format_metrics(metrics)
        )
        return True

    def _on_training_end(self) -> None:
        if self.report is not None:
            metrics = self.validation.last_metrics if self.validation else {}
            self.report(self.num_timesteps, metrics)
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=self.num_timesteps)
            self._progress.stop()


def format_metrics(metrics: dict[str, float]) -> str:
    """Short text of the headline validation metrics (empty before the first evaluation)."""
    if not metrics:
        return ""
    parts = [f"gmv {metrics['gmv']:,.0f}", f"roi {metrics['roi']:.2f}"]
    parts.append(f"viol {100 * metrics['roi_violation_rate']:.0f}%")
    if "gmv_ratio_to_planner_pct" in metrics:
        parts.append(f"total GMV {metrics['gmv_ratio_to_planner_pct']:.1f}% of the planner's")
    if "gmv_ratio_to_oracle_pct" in metrics:
        parts.append(f"total GMV {metrics['gmv_ratio_to_oracle_pct']:.1f}% of the oracle's")
    return " | ".join(parts)


class HParamsCallback(BaseCallback):
    """Logs the hyperparameters with the validation metrics to TensorBoard's HParams tab."""

    METRICS = (
        "eval/gmv",
        "eval/roi",
        "eval/roi_violation_rate",
        "eval/pct_of_oracle",
        "eval/gmv_ratio_to_planner_pct",
        "eval/gmv_ratio_to_oracle_pct",
        "eval/auctionnet_score",
        "eval/mean_reward",
    )

    def __init__(self, hparams: dict[str, float | int | str | bool]) -> None:
        super().__init__()
        self.hparams = hparams

    def _on_training_start(self) -> None:
        self.logger.record(
            "hparams",
            HParam(self.hparams, {name: 0.0 for name in self.METRICS}),
            exclude=("stdout", "log", "json", "csv"),
        )

    def _on_step(self) -> bool:
        return True
