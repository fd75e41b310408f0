"""Where an imitating student's ROI misses come from: the imitation, or what it cannot see.

``algorithm: dagger`` trains a student that reads the observation to act as ``planner_cc``, who
reads each campaign's true parameters. The student misses its targets several times as often
as its teacher. This script splits that gap in two, on the same held-out campaigns:

- **teacher through actions**: the teacher's spend (``planner_cc`` for ``dagger``) turned into
  the env's action as the imitation labels are
  (:func:`~budgetgym.agents.imitation.teacher_action`: capped at the fastest pace). What a
  perfect student could reach.
- **student** (``--inputs``): behaviour cloning then DAgger of ``planner_cc``, the imitation
  settings and training scenarios of ``--config``, by an MLP (the config's ``pi`` layers) that
  reads the observation (``observation``: what ``algorithm: dagger`` learns) or the observation
  and the campaign's true parameters (``privileged``: the critic inputs of
  :func:`~budgetgym.agents.privileged.privileged_features`). A privileged student has no
  information gap to its teacher: what it misses beyond the teacher is the imitation's own.

Each figure is a share of ``planner_cc``'s GMV and a miss rate. One ``--inputs`` per process,
so two can run side by side::

    .venv/bin/python scripts/bench_imitation_gap.py --inputs privileged --json runs/gap_priv.json
    .venv/bin/python scripts/bench_imitation_gap.py --inputs observation --json runs/gap_obs.json

Campaigns of the imitation come from the training seed range; the evaluation reads held-out
ones (``--seed-start``, default 1,000,000). The privileged student cannot be served: it exists
to measure.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from budgetgym.agents.checkpoints import ObsNormalizer
from budgetgym.agents.config import TrainConfig, load_config
from budgetgym.agents.evaluation import parse_scenarios
from budgetgym.agents.imitation import (
    ActorFit,
    collect,
    load_teacher,
    mean_action,
    split_campaigns,
    teacher_action,
)
from budgetgym.agents.policy import PLANNER_CC, load_policy
from budgetgym.agents.privileged import privileged_features
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.scripts.bench_common import add_campaign_arguments, gmv_and_miss

INPUTS = ("observation", "privileged")


class TeacherThroughActions:
    """The teacher (a planner acting in spend) acting through the env's action, as its
    imitation labels do."""

    name = "teacher_through_actions"

    def __init__(self, teacher: Any) -> None:
        self.teacher = teacher

    def reset(self, campaigns: BatchedCampaigns) -> None:
        self.campaigns = campaigns
        self.teacher.reset(campaigns)

    def predict(self, obs: np.ndarray, *_: Any, **__: Any) -> tuple[np.ndarray, None]:
        action, _ = teacher_action(self.teacher.spend(obs), self.campaigns)
        return action, None


class Student:
    """An MLP actor (the config's ``pi`` layers and activation) on the normalized observation,
    with each campaign's ``extra_dim`` true parameters appended when ``privileged``.

    Attributes:
        true_parameters: the campaigns' :func:`privileged_features` ``(n, extra_dim)``, read at
            ``reset`` (None for an observation student).
    """

    def __init__(
        self,
        normalizer: ObsNormalizer,
        extra_dim: int,
        action_dim: int,
        config: TrainConfig,
    ) -> None:
        self.normalizer, self.privileged = normalizer, extra_dim > 0
        self.name = f"{'privileged' if self.privileged else 'observation'}_student"
        self.true_parameters: np.ndarray | None = None
        kwargs = config.hyperparams.policy_kwargs.sb3_kwargs(actor_critic=True, recurrent=False)
        arch = kwargs["net_arch"]
        self.policy = ActorCriticPolicy(
            gym.spaces.Box(-np.inf, np.inf, (len(normalizer.mean) + extra_dim,), np.float32),
            gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32),
            lambda _: 0.0,
            net_arch={"pi": arch["pi"] if isinstance(arch, dict) else arch, "vf": []},
            activation_fn=kwargs["activation_fn"],
        )

    def inputs(self, obs: np.ndarray, params: np.ndarray | None) -> np.ndarray:
        """The actor's input ``(n, obs_dim [+ 3k + 6])`` float32."""
        x = self.normalizer(obs)
        return np.concatenate([x, params], axis=1) if self.privileged else x

    def reset(self, campaigns: BatchedCampaigns) -> None:
        self.true_parameters = privileged_features(campaigns.params) if self.privileged else None

    def predict(self, obs: np.ndarray, *_: Any, **__: Any) -> tuple[np.ndarray, None]:
        with torch.no_grad():
            action = mean_action(
                self.policy, torch.as_tensor(self.inputs(obs, self.true_parameters))
            )
        return np.clip(action.numpy().astype(np.float64), -1.0, 1.0), None


def train_student(config: TrainConfig, privileged: bool, log: Any = print) -> Student:
    """Behaviour cloning then ``config.imitation.iterations`` DAgger iterations of planner_cc
    on fresh training campaigns of ``config.env``'s scenarios (split as its ``n_envs``)."""
    settings, env = config.imitation, config.env
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    student: Student | None = None
    fitter: ActorFit | None = None
    inputs, targets, holdout = [], [], []
    first = 0
    counts = [settings.bc_campaigns] + [settings.campaigns_per_iteration] * settings.iterations
    for stage, count in enumerate(counts):
        for scenario, share in zip(
            env.scenarios, split_campaigns(count, env.campaigns_per_scenario), strict=True
        ):
            seeds = first + np.arange(share, dtype=np.int64)
            first += share
            data, _ = collect(
                scenario,
                seeds,
                student=student if stage > 0 else None,  # behaviour cloning: the teacher alone
                beta=settings.beta_decay**stage,
                rng=rng,
                teacher=settings.teacher,
                teacher_alpha=settings.teacher_alpha,
                holdout_frac=settings.holdout_frac,
                horizon_hours=env.horizon_hours,
            )
            params = _row_params(scenario, seeds, len(data.obs), env.horizon_hours, privileged)
            if student is None:  # statistics of the first behaviour-cloning states, then frozen
                normalizer = ObsNormalizer(
                    data.obs.mean(axis=0), data.obs.var(axis=0), 1e-8, config.normalize.clip_obs
                )
                extra = 0 if params is None else params.shape[1]
                student = Student(normalizer, extra, data.actions.shape[1], config)
                fitter = ActorFit(student.policy, settings, config.seed)
            inputs.append(student.inputs(data.obs, params))
            targets.append(data.actions)
            holdout.append(data.holdout)
        fit = fitter.fit(np.concatenate(inputs), np.concatenate(targets), np.concatenate(holdout))
        states = sum(map(len, targets))
        log(f"stage {stage}: {states:,} states, held-out loss {fit.validation_loss:.4f}")
    return student


def _row_params(
    scenario: str, seeds: np.ndarray, rows: int, horizon_hours: int, privileged: bool
) -> np.ndarray | None:
    """Each labelled state's campaign parameters ``(rows, 3k + 6)`` (states are hour-major),
    or None for an observation student."""
    if not privileged:
        return None
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    campaigns.reset(seeds)
    return np.tile(privileged_features(campaigns.params), (rows // len(seeds), 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", choices=INPUTS, required=True, help="What the student reads.")
    parser.add_argument("--config", default="dagger", help="Imitation settings (default: dagger).")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="Overrides.")
    add_campaign_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, dotlist=args.set)
        scenarios = parse_scenarios(args.scenarios)
        if config.imitation is None:
            raise ValueError(f"Config {args.config!r} has no imitation section.")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    student = train_student(config, args.inputs == "privileged")
    horizon = config.env.horizon_hours
    rows = []
    for scenario in scenarios:
        reference, reference_miss = gmv_and_miss(
            load_policy(PLANNER_CC), scenario, args.episodes, args.seed_start, horizon
        )
        row = {"scenario": scenario, "planner_cc_miss_pct": 100 * reference_miss}
        teacher = load_teacher(config.imitation.teacher, config.imitation.teacher_alpha)
        for policy in (TeacherThroughActions(teacher), student):
            gmv, miss = gmv_and_miss(policy, scenario, args.episodes, args.seed_start, horizon)
            row[policy.name] = {"pct_of_planner_cc": 100 * gmv / reference, "miss_pct": 100 * miss}
        rows.append(row)
        print(
            f"{scenario}: planner_cc misses {row['planner_cc_miss_pct']:.1f}%; "
            + "; ".join(
                f"{name} {row[name]['pct_of_planner_cc']:.1f}% at {row[name]['miss_pct']:.1f}%"
                for name in ("teacher_through_actions", student.name)
            ),
            flush=True,
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"config": args.config, "set": args.set, "inputs": args.inputs, "rows": rows}
        report.update(episodes=args.episodes, seed_start=args.seed_start)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
