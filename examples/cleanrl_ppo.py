"""PPO for continuous actions in one file, CleanRL-style, on budgetgym's batched ``VectorEnv``.

Bring your own algorithm: this file uses budgetgym only through four pieces, and any other
algorithm can do the same.

- The environment: ``gym.make_vec(ENV_ID, num_envs=N, scenario=...)`` steps N campaigns with one
  call of the compiled core (``budgetgym.envs.MultiChannelBudgetVectorEnv``; the numpy-array
  API under it is ``budgetgym.envs.BatchedCampaigns``). ``reset(seed=s)`` starts the training
  campaigns ``s .. s+N-1``; later episodes draw seeds below ``TRAIN_SEED_LIMIT`` (900,000).
- The info: arrays over campaigns; at the end of an episode ``info["final_info"]`` holds
  ``gmv_total``, ``spend_total``, ``roi``, ``target_roi``, ``budget`` and ``compensation``.
- The evaluation: any object with ``name``, ``reset(campaigns)`` and
  ``predict(obs) -> (actions, None)`` runs in ``budgetgym.agents.evaluation`` on held-out
  campaigns (seeds from ``EVAL_SEED_START`` = 1,000,000, which training never reaches) with
  common random numbers, so the comparison with a rule is paired.
- The export (``--export policy.onnx``): an ONNX graph ``raw obs -> action`` with a
  ``policy.json`` sidecar runs in ``budgetgym evaluate --policy`` and ``budgetgym compare``.

Run: ``python examples/cleanrl_ppo.py --scenario mixed --total-timesteps 1000000``, then
``tensorboard --logdir runs/cleanrl``. Every flag: ``--help``.
"""

import argparse
import dataclasses
import logging
import random
import time
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.utils import RunningMeanStd
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.distributions.normal import Normal
from torch.utils.tensorboard import SummaryWriter

import budgetgym  # noqa: F401  (registers the environment)
from budgetgym.agents.channel_set import channels_of
from budgetgym.agents.checkpoints import write_json
from budgetgym.agents.evaluation import simulate, summarize
from budgetgym.agents.export import INPUT_NAME, OUTPUT_NAME, OnnxPolicy, policy_sidecar
from budgetgym.agents.metrics import compensation_pct_of_spend
from budgetgym.agents.policy import load_policy, unavailable
from budgetgym.envs import (
    ENV_ID,
    EVAL_SEED_START,
    HORIZON_HOURS,
    TRAIN_SEED_LIMIT,
    BatchedCampaigns,
    check_scenario,
)
from budgetgym.envs.campaigns import roi_target_missed


def arg(default: object, help_text: str) -> typing.Any:
    """A field of ``Args`` with its help text (``--help`` shows it)."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclass
class Args:
    """The run's settings; each field is a command-line flag (``seed`` -> ``--seed``)."""

    exp_name: str = arg("cleanrl_ppo", "the run's name in its directory")
    seed: int = arg(1, "seeds torch, numpy and the first training campaigns seed .. seed+N-1")
    torch_threads: int = arg(1, "torch's CPU threads (a run repeats exactly for a given number)")
    run_dir: str = arg("", "output directory (default runs/cleanrl/<exp>__<scenario>__<seed>__<t>)")
    scenario: str = arg("mixed", "scenario name (`budgetgym scenario list`) or scenario file")
    horizon_hours: int = arg(HORIZON_HOURS, "episode length in hours (shorter ones: tests)")
    total_timesteps: int = arg(1_000_000, "environment steps (campaign-hours) of training")
    num_envs: int = arg(64, "campaigns stepped together by the compiled core")
    num_steps: int = arg(HORIZON_HOURS, "steps per campaign in each rollout")
    learning_rate: float = arg(3e-4, "Adam's learning rate")
    anneal_lr: bool = arg(True, "anneal the learning rate linearly to 0")
    gamma: float = arg(0.999, "discount factor (an episode is 168 hourly steps)")
    gae_lambda: float = arg(0.95, "lambda of generalized advantage estimation")
    num_minibatches: int = arg(4, "minibatches per epoch")
    update_epochs: int = arg(10, "epochs over each rollout")
    norm_adv: bool = arg(True, "normalize advantages per minibatch")
    clip_coef: float = arg(0.2, "surrogate clipping coefficient")
    clip_vloss: bool = arg(True, "clip the value loss as the policy's")
    ent_coef: float = arg(0.0, "entropy bonus coefficient")
    vf_coef: float = arg(0.5, "value loss coefficient")
    max_grad_norm: float = arg(0.5, "gradient clipping norm")
    target_kl: float = arg(0.0, "stop an update's epochs above this approximate KL (0: never)")
    log_std_init: float = arg(-0.5, "initial log standard deviation of the Gaussian policy")
    clip_obs: float = arg(10.0, "normalized observations are clipped to [-clip_obs, clip_obs]")
    eval_episodes: int = arg(256, "held-out campaigns (seeds from 1,000,000) to evaluate on")
    baseline: str = arg("calendar_pacing", "the rule the trained policy is compared with")
    export: str = arg("", "write the actor to this .onnx file (+ .json sidecar), checked vs torch")


def parse_args(argv: list[str] | None = None) -> Args:
    """``Args`` from the command line; a bad value exits with status 2 and one sentence."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        flag, kind = "--" + field.name.replace("_", "-"), field.type
        help_text = f"{field.metadata['help']} (default: {field.default!r})"
        action = argparse.BooleanOptionalAction if kind is bool else None
        parser.add_argument(
            flag,
            type=None if action else kind,
            action=action,
            default=field.default,
            help=help_text,
        )
    args = Args(**vars(parser.parse_args(argv)))
    batch, seeds_end = args.num_envs * args.num_steps, TRAIN_SEED_LIMIT - args.num_envs
    problems = [
        (args.num_envs < 1, f"--num-envs must be >= 1, got {args.num_envs}"),
        (args.num_steps < 1, f"--num-steps must be >= 1, got {args.num_steps}"),
        (
            not 0 <= args.seed < seeds_end,
            f"--seed must be in [0, {seeds_end}) so that the first "
            f"campaigns are training ones (< {TRAIN_SEED_LIMIT}), got {args.seed}",
        ),
        (
            args.total_timesteps < batch,
            f"--total-timesteps must be >= num_envs * num_steps = "
            f"{batch}, got {args.total_timesteps}",
        ),
        (
            args.num_minibatches < 1 or batch % args.num_minibatches,
            f"--num-minibatches must "
            f"divide num_envs * num_steps = {batch}, got {args.num_minibatches}",
        ),
        (args.eval_episodes < 1, f"--eval-episodes must be >= 1, got {args.eval_episodes}"),
        (
            args.export and not args.export.endswith(".onnx"),
            f"--export must name an .onnx file, got {args.export!r}",
        ),
    ]
    for failed, message in problems:
        if failed:
            parser.error(message + ".")
    try:  # before training rather than after it
        check_scenario(args.scenario)
        reason = unavailable(load_policy(args.baseline), args.scenario)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    if reason:
        parser.error(f"--baseline {args.baseline} cannot run on {args.scenario}: {reason}")
    return args


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, out_dim: int, out_std: float) -> nn.Sequential:
    """Two tanh layers of 64, then a linear output initialized with gain ``out_std``."""
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
        layer_init(nn.Linear(64, out_dim), std=out_std),
    )  # fmt: skip


class Agent(nn.Module):
    """Separate actor and critic MLPs on normalized observations ``(batch, obs_dim)``; the
    actor is a diagonal Gaussian over actions ``(batch, action_dim)``."""

    def __init__(self, obs_dim: int, action_dim: int, log_std_init: float) -> None:
        super().__init__()
        self.critic = mlp(obs_dim, 1, out_std=1.0)
        self.actor_mean = mlp(obs_dim, action_dim, out_std=0.01)
        self.actor_logstd = nn.Parameter(torch.full((1, action_dim), log_std_init))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sampled (or the given) action, its log-probability, the entropy and the value."""
        action_mean = self.actor_mean(x)
        probs = Normal(action_mean, self.actor_logstd.expand_as(action_mean).exp())
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


class DeterministicActor(nn.Module):
    """Raw observation ``(batch, obs_dim)`` float32 -> deterministic action ``(batch,
    action_dim)`` in ``[-1, 1]``: the frozen normalization, the actor's mean, clipping. What is
    evaluated and exported."""

    def __init__(self, agent: Agent, obs_rms: RunningMeanStd, clip_obs: float) -> None:
        super().__init__()
        self.actor_mean, self.clip_obs = agent.actor_mean, clip_obs
        self.register_buffer("mean", torch.as_tensor(obs_rms.mean, dtype=torch.float64))
        self.register_buffer("std", torch.as_tensor(np.sqrt(obs_rms.var + 1e-8)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(
            (obs.to(torch.float64) - self.mean) / self.std, -self.clip_obs, self.clip_obs
        )
        return torch.clamp(self.actor_mean(x.to(torch.float32)), -1.0, 1.0)


class TorchPolicy:
    """``DeterministicActor`` behind budgetgym's policy interface (see ``agents/policy.py``)."""

    def __init__(self, actor: DeterministicActor, name: str) -> None:
        self.actor, self.name = actor, name

    def reset(self, campaigns: BatchedCampaigns) -> None:
        """Stateless: nothing to clear between batches of campaigns."""

    def predict(
        self, obs: np.ndarray, state: None = None, episode_start: None = None, deterministic=True
    ) -> tuple[np.ndarray, None]:
        """Deterministic actions ``(n, action_dim)`` for raw observations ``(n, obs_dim)``."""
        with torch.no_grad():
            return self.actor(torch.as_tensor(obs, dtype=torch.float32)).numpy(), None


def log_episodes(writer: SummaryWriter, infos: dict, global_step: int) -> float:
    """Log the campaigns that ended this step (returns, GMV, ROI, misses); their mean return."""
    done, final = infos["_episode"], infos["final_info"]
    gmv, spend, target = (final[key][done] for key in ("gmv_total", "spend_total", "target_roi"))
    episodic_return = float(infos["episode"]["r"][done].mean())
    writer.add_scalar("charts/episodic_return", episodic_return, global_step)
    writer.add_scalar(
        "charts/episodic_gmv_per_budget", float((gmv / final["budget"][done]).mean()), global_step
    )
    writer.add_scalar("charts/episodic_roi", float(final["roi"][done].mean()), global_step)
    writer.add_scalar(
        "charts/roi_miss_rate", float(roi_target_missed(gmv, target, spend).mean()), global_step
    )
    compensation = compensation_pct_of_spend(final["compensation"][done], spend)
    writer.add_scalar("charts/compensation_pct_of_spend", compensation, global_step)
    return episodic_return


def held_out_observations(scenario: str, episodes: int, horizon_hours: int) -> np.ndarray:
    """Raw observations ``(episodes * horizon_hours, obs_dim)`` of held-out campaigns played
    by even pacing over an even split (the action 0): inputs for the export's parity check."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    obs, _ = campaigns.reset(EVAL_SEED_START + np.arange(episodes))
    seen = [obs]
    for _ in range(horizon_hours - 1):
        seen.append(campaigns.step(np.zeros((episodes, campaigns.layout.action_dim)))[0])
    return np.concatenate(seen)


def export_onnx(
    actor: DeterministicActor, path: Path, campaigns: BatchedCampaigns, args: Args
) -> float:
    """Write ``actor`` to ONNX with the sidecar ``budgetgym evaluate --policy`` reads; return
    the largest difference to torch over held-out observations (checked <= 1e-5)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(2, campaigns.layout.dim),)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # its notes on absent torchvision
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            actor,
            example,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1)}},
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))
    sidecar = policy_sidecar(
        channels_of(campaigns),
        scenario=args.scenario,
        algorithm=args.exp_name,
        residual_base="none",
        num_timesteps=args.total_timesteps,
        source=None,
    )
    write_json(path.with_suffix(".json"), sidecar)
    obs = held_out_observations(args.scenario, 16, args.horizon_hours)
    with torch.no_grad():
        expected = actor(torch.as_tensor(obs)).numpy()
    error = float(np.abs(OnnxPolicy(path).predict(obs)[0] - expected).max())
    if error > 1e-5:
        raise RuntimeError(f"The ONNX actor differs from torch by {error:.2e} (> 1e-5).")
    return error


def evaluate_held_out(actor: DeterministicActor, args: Args, writer: SummaryWriter) -> list[dict]:
    """The trained policy and ``args.baseline`` on the same held-out campaigns (common random
    numbers): prints a table, logs it, returns both summaries (``agents/evaluation.py``)."""
    policies = [TorchPolicy(actor, args.exp_name), load_policy(args.baseline)]
    summaries = []
    for policy in policies:
        run = simulate(
            policy,
            args.scenario,
            args.eval_episodes,
            EVAL_SEED_START,
            progress=False,
            horizon_hours=args.horizon_hours,
        )
        summaries.append(summarize(run.episodes, policy.name, args.scenario))
    rule_gmv = summaries[1]["gmv_mean"]
    title = f"{args.eval_episodes} held-out campaigns of {args.scenario} (seeds from "
    table = Table(title=f"{title}{EVAL_SEED_START:,}); GMV in % of {args.baseline}'s")
    for column in ("policy", "GMV (CNY)", "GMV %", "ROI", "ROI misses", "refund % of spend"):
        table.add_column(column, justify="right")
    for s in summaries:
        gmv, misses = s["gmv_mean"], 100 * s["roi_violation_rate"]
        cells = (f"{gmv:,.0f}", f"{100 * gmv / rule_gmv:.1f}", f"{s['roi_mean']:.2f}")
        table.add_row(
            s["policy"], *cells, f"{misses:.1f}%", f"{s['compensation_pct_of_spend']:.2f}%"
        )
    Console().print(table)
    mine = summaries[0]
    writer.add_scalar("eval/gmv_pct_of_baseline", 100 * mine["gmv_mean"] / rule_gmv)
    writer.add_scalar("eval/roi_miss_rate", mine["roi_violation_rate"])
    return summaries


def main(args: Args) -> dict:
    """Train, evaluate on held-out campaigns, optionally export. Returns the run's directory,
    the last update's losses, the evaluation summaries and the ``DeterministicActor``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{args.exp_name}__{Path(args.scenario).stem}__{args.seed}__{stamp}"
    run_dir = Path(args.run_dir or Path("runs/cleanrl") / name)
    writer = SummaryWriter(str(run_dir))
    table = "\n".join(f"|{key}|{value}|" for key, value in vars(args).items())
    writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    # Seeding: python, numpy, torch, and the campaigns (seed .. seed + num_envs - 1 first).
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)
    torch.use_deterministic_algorithms(True)

    # Env setup: one VectorEnv over the compiled core, gymnasium's vector wrappers on top.
    envs = gym.make_vec(
        ENV_ID,
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        scenario=args.scenario,
        horizon_hours=args.horizon_hours,
    )
    campaigns = envs.unwrapped.campaigns
    envs = gym.wrappers.vector.ClipAction(envs)  # the env refuses actions outside [-1, 1]
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)  # the raw return, in info["episode"]
    envs = gym.wrappers.vector.NormalizeReward(envs, gamma=args.gamma)
    envs = gym.wrappers.vector.TransformReward(envs, lambda r: np.clip(r, -10, 10))
    # gymnasium's NormalizeObservation wants next-step autoreset; this env resets in the same
    # step (all campaigns end together), so the observation statistics are kept here.
    obs_rms = RunningMeanStd(shape=envs.single_observation_space.shape)

    def normalize(raw_obs: np.ndarray) -> torch.Tensor:
        obs_rms.update(raw_obs)
        x = np.clip(
            (raw_obs - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -args.clip_obs, args.clip_obs
        )
        return torch.as_tensor(x, dtype=torch.float32)

    obs_dim, action_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    agent = Agent(obs_dim, action_dim, args.log_std_init)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # Storage: (num_steps, num_envs, ...)
    obs = torch.zeros((args.num_steps, args.num_envs, obs_dim))
    actions = torch.zeros((args.num_steps, args.num_envs, action_dim))
    logprobs, rewards, dones, values = (
        torch.zeros((args.num_steps, args.num_envs)) for _ in range(4)
    )

    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size
    global_step, start_time = 0, time.time()
    next_obs = normalize(envs.reset(seed=args.seed)[0])
    next_done = torch.zeros(args.num_envs)
    losses: dict[str, float] = {}
    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (
                1.0 - (iteration - 1.0) / num_iterations
            ) * args.learning_rate

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            raw_obs, reward, terminations, truncations, infos = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs = normalize(raw_obs)  # after a done: the next campaigns' first observation
            next_done = torch.as_tensor(
                np.logical_or(terminations, truncations), dtype=torch.float32
            )
            if "episode" in infos:
                episodic_return = log_episodes(writer, infos, global_step)
                print(f"global_step={global_step}, episodic_return={episodic_return:.3f}")

        # Bootstrap value, generalized advantage estimation (GAE).
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                nextnonterminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = (
                    delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                )
            returns = advantages + values

        # Flatten the batch.
        b_obs, b_actions = obs.reshape((-1, obs_dim)), actions.reshape((-1, action_dim))
        b_logprobs, b_advantages = logprobs.reshape(-1), advantages.reshape(-1)
        b_returns, b_values = returns.reshape(-1), values.reshape(-1)

        # Optimize the policy and value network.
        b_inds = np.arange(batch_size)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            rng.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start : start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():  # http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std() + 1e-8
                    )
                # Policy loss: the clipped surrogate.
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(
                    ratio, 1 - args.clip_coef, 1 + args.clip_coef
                )
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                # Value loss, clipped around the rollout's values if asked.
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
            if args.target_kl > 0 and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values.numpy(), b_returns.numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        losses = {
            "value_loss": v_loss.item(),
            "policy_loss": pg_loss.item(),
            "entropy": entropy_loss.item(),
            "old_approx_kl": old_approx_kl.item(),
            "approx_kl": approx_kl.item(),
            "clipfrac": float(np.mean(clipfracs)),
            "explained_variance": float(explained_var),
        }
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        for key, value in losses.items():
            writer.add_scalar(f"losses/{key}", value, global_step)
        sps = int(global_step / (time.time() - start_time))
        print("SPS:", sps)
        writer.add_scalar("charts/SPS", sps, global_step)
    envs.close()

    actor = DeterministicActor(agent, obs_rms, args.clip_obs).eval()
    torch.save({"agent": agent.state_dict(), "actor": actor.state_dict()}, run_dir / "agent.pt")
    summaries = evaluate_held_out(actor, args, writer)
    if args.export:
        error = export_onnx(actor, Path(args.export), campaigns, args)
        print(f"Exported {args.export} (max |ONNX - torch| = {error:.1e} on held-out observations)")
    writer.close()
    return {"run_dir": run_dir, "losses": losses, "summaries": summaries, "actor": actor}


if __name__ == "__main__":
    main(parse_args())
