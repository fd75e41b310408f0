"""The single-file CleanRL-style PPO (examples/cleanrl_ppo.py) on a few thousand steps."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from budgetgym.agents.policy import load_policy
from budgetgym.envs import ENV_ID, EVAL_SEED_START, TRAIN_SEED_LIMIT, BatchedCampaigns

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cleanrl_ppo.py"
#: 8 campaigns of 24 hours, rollouts of 24 steps: 8 updates, 8 episodes, in a few seconds.
FAST = [
    "--scenario", "hit_product", "--horizon-hours", "24", "--num-envs", "8", "--num-steps", "24",
    "--total-timesteps", "1536", "--update-epochs", "2", "--eval-episodes", "8",
]  # fmt: skip
SEED = 7


@pytest.fixture(scope="module")
def cleanrl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cleanrl_ppo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(cleanrl: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two runs with the same seed (the first exported, every campaign seed recorded) and one
    with another seed."""
    seeds_seen: list[np.ndarray] = []
    reset = BatchedCampaigns.reset

    def recording_reset(self: BatchedCampaigns, seeds: np.ndarray) -> tuple:
        seeds_seen.append(np.asarray(seeds).copy())
        return reset(self, seeds)

    out = {}
    threads = torch.get_num_threads()  # the script sets both for the process; restored below
    deterministic = torch.are_deterministic_algorithms_enabled()
    for name, seed in (("first", SEED), ("again", SEED), ("other", SEED + 1)):
        run_dir = tmp_path_factory.mktemp(name)
        argv = [*FAST, "--seed", str(seed), "--run-dir", str(run_dir)]
        if name == "first":
            argv += ["--export", str(run_dir / "policy.onnx")]
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(BatchedCampaigns, "reset", recording_reset)
                out[name] = cleanrl.main(cleanrl.parse_args(argv))
        else:
            out[name] = cleanrl.main(cleanrl.parse_args(argv))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    out["seeds_seen"] = seeds_seen
    return out


def test_run_finishes_and_writes_tensorboard_events(runs: dict) -> None:
    run_dir = runs["first"]["run_dir"]
    assert (run_dir / "agent.pt").is_file()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "charts/episodic_return", "charts/episodic_gmv_per_budget", "charts/episodic_roi",
        "charts/roi_miss_rate", "charts/compensation_pct_of_spend", "charts/SPS",
        "charts/learning_rate", "losses/value_loss", "losses/policy_loss", "losses/entropy",
        "losses/approx_kl", "eval/gmv_pct_of_baseline", "eval/roi_miss_rate",
    }  # fmt: skip
    assert expected <= tags
    assert len(events.Scalars("losses/value_loss")) == 8  # one per update
    assert len(events.Scalars("charts/episodic_return")) == 8  # one per 24-hour episode
    returns = [e.value for e in events.Scalars("charts/episodic_return")]
    assert np.isfinite(returns).all()


def test_losses_are_finite_and_the_rate_anneals(runs: dict) -> None:
    losses = runs["first"]["losses"]
    assert {"value_loss", "policy_loss", "entropy", "approx_kl"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values()), losses
    events = EventAccumulator(str(runs["first"]["run_dir"]))
    events.Reload()
    rates = [e.value for e in events.Scalars("charts/learning_rate")]
    assert rates[0] == pytest.approx(3e-4) and rates[-1] < rates[0]


def test_policy_actions_match_the_env(cleanrl: ModuleType, runs: dict) -> None:
    env = gym.make_vec(ENV_ID, num_envs=5, scenario="hit_product", horizon_hours=24)
    obs, _ = env.reset(seed=EVAL_SEED_START)
    actions, _ = cleanrl.TorchPolicy(runs["first"]["actor"], "ppo").predict(obs)
    assert actions.shape == env.action_space.shape == (5, 7)
    assert np.isfinite(actions).all() and np.abs(actions).max() <= 1.0
    env.step(actions)  # the env accepts them


def test_same_seed_gives_identical_parameters(runs: dict) -> None:
    def parameters(name: str) -> dict:
        return torch.load(runs[name]["run_dir"] / "agent.pt", weights_only=True)["agent"]

    first, again, other = parameters("first"), parameters("again"), parameters("other")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)

    def held_out(name: str) -> list[tuple]:
        return [(s["gmv_mean"], s["roi_violation_rate"]) for s in runs[name]["summaries"]]

    assert held_out("first") == held_out("again")


def test_training_meets_training_campaigns_only(runs: dict) -> None:
    """Training resets draw seeds below TRAIN_SEED_LIMIT (the first batch: seed .. seed+7);
    every other reset is a held-out evaluation on seeds from EVAL_SEED_START."""
    seen = runs["seeds_seen"]
    training = [s for s in seen if s.max() < TRAIN_SEED_LIMIT]
    held_out = [s for s in seen if s.min() >= EVAL_SEED_START]
    assert len(training) + len(held_out) == len(seen)
    assert len(training) == 9  # the first reset, then one at the end of each of 8 episodes
    np.testing.assert_array_equal(training[0], SEED + np.arange(8))
    assert len(held_out) >= 2  # the policy and the rule, on the same campaigns
    np.testing.assert_array_equal(held_out[0], held_out[1])
    np.testing.assert_array_equal(held_out[0], EVAL_SEED_START + np.arange(8))


def test_evaluation_compares_with_the_rule(runs: dict) -> None:
    mine, rule = runs["first"]["summaries"]
    assert (mine["policy"], rule["policy"]) == ("cleanrl_ppo", "calendar_pacing")
    assert mine["episodes"] == rule["episodes"] == 8
    assert mine["gmv_mean"] > 0 and rule["gmv_mean"] > 0


def test_export_runs_in_the_evaluation_harness(runs: dict) -> None:
    path = runs["first"]["run_dir"] / "policy.onnx"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert (sidecar["obs_dim"], sidecar["action_dim"]) == (77, 7)
    policy = load_policy(str(path))  # what `budgetgym evaluate --policy` does
    campaigns = BatchedCampaigns("hit_product", horizon_hours=24)
    obs, _ = campaigns.reset(EVAL_SEED_START + np.arange(4))
    policy.reset(campaigns)
    actions, _ = policy.predict(obs)
    with torch.no_grad():
        expected = runs["first"]["actor"](torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-minibatches", "5"], "--num-minibatches must divide"),
        (["--seed", str(TRAIN_SEED_LIMIT)], "--seed must be in [0, "),
        (["--total-timesteps", "10"], "--total-timesteps must be >="),
        (["--baseline", "calendar_pacin"], "calendar_pacing"),
        (["--scenario", "hit_produkt"], "hit_product"),
        (["--export", "policy.pt"], "--export must name an .onnx file"),
    ],
)
def test_bad_arguments_exit_with_one_sentence(
    cleanrl: ModuleType, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cleanrl.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
