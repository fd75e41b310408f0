"""Training pipeline end to end: CLI smoke test, resume, Ctrl-C, seeds, bad input loses nothing."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.vec_env import DummyVecEnv

from budgetgym.agents.callbacks import (
    ScenarioAdvantageNorm,
    campaign_scenarios,
    standardize_by_group,
)
from budgetgym.agents.checkpoints import (
    RunPaths,
    describe_checkpoint,
    load_checkpoint,
    load_run_policy,
    read_meta,
)
from budgetgym.agents.config import validate_config
from budgetgym.agents.residual import ResidualAction, base_action
from budgetgym.agents.runlock import LOCK_FILE
from budgetgym.agents.training import (
    default_torch_threads,
    make_train_env,
    mean_ci,
    read_evaluations,
    resume,
    train,
)
from budgetgym.agents.verdict import OUTCOMES
from budgetgym.agents.wrappers import DenseRoiPenalty, PairedBaseline, RoiMissPenalty
from budgetgym.envs import OBS_DIM, BudgetVecEnv
from tests.agents.tiny_runs import cli, quiet, tiny, wait_for_file, write_config


def test_cli_train_writes_a_complete_run_directory(tmp_path: Path) -> None:
    data = tiny(eval={"references": True, "final_episodes": 2, "final_scenarios": ["hit_product"]})
    config = write_config(tmp_path, data)
    overrides = ("hyperparams.learning_rate=1e-3", "hyperparams.policy_kwargs.net_arch=[32, 32]")
    proc = cli("train", "--config", str(config), "--run-dir", "run", "--set", *overrides,
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Not a terminal: progress as plain lines, no bars redrawn with carriage returns.
    assert "\r" not in proc.stdout + proc.stderr
    assert "train: 100% (192/192 steps)" in proc.stdout
    run = RunPaths(tmp_path / "run")
    recorded = yaml.safe_load(run.config.read_text())
    assert recorded["total_timesteps"] == 192
    assert recorded["hyperparams"]["learning_rate"] == 1e-3
    assert recorded["hyperparams"]["policy_kwargs"]["net_arch"] == [32, 32]
    assert shlex.join(["--set", *overrides]) in run.command.read_text()
    info = json.loads(run.versions.read_text())
    for key in ("python", "torch", "gymnasium", "stable_baselines3", "budgetgym", "git_commit"):
        assert key in info
    assert info["obs_dim"] == OBS_DIM
    assert info["torch_threads"] == default_torch_threads() == (os.cpu_count() or 1)
    for directory in (run.best, run.final, *run.list_checkpoints()):
        names = {p.name for p in directory.iterdir()}
        assert {"model.zip", "vecnormalize.npz", "meta.json"} <= names
    assert len(run.list_checkpoints()) == 2  # keep_last
    assert read_meta(run.final)["num_timesteps"] >= 192
    # Held-out comparison with every baseline and the oracle.
    rows = json.loads((run.eval / "leaderboard.json").read_text())
    policies = {row["policy"] for row in rows}
    assert {"oracle", "run"} <= policies and len(policies) > 3
    report = run.report.read_text()
    assert "budgetgym train --config" in report
    assert "### Against the best rule" in report and "| run | hit_product |" in report
    # The checkpoint evaluated is named in the report, the leaderboard and the terminal.
    used = str(describe_checkpoint(run.root))
    assert used.startswith(("best/ at step ", "final/ at step "))
    assert f"`run`: `{used}`" in report and used in (run.eval / "leaderboard.md").read_text()
    # The terminal ends with the verdict and the paths, not the tables.
    assert "| # | policy" not in proc.stdout
    verdict = proc.stdout[proc.stdout.index("Against the best rule") :].splitlines()
    assert verdict[1].split()[0] == "hit_product" and verdict[1].split()[1] in OUTCOMES
    assert f"Evaluated run: {used}" in proc.stdout
    for line in (f"Report: {run.report.relative_to(tmp_path)}", "tensorboard --logdir run/tb"):
        assert line in proc.stdout
    # TensorBoard: SB3 scalars, domain scalars, references.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"train/value_loss", "eval/gmv", "eval/roi", "eval/roi_violation_rate",
                "eval/pct_of_oracle", "eval/gmv_ratio_to_oracle_pct", "eval/budget_utilization",
                "eval/gmv_ratio_to_planner_pct", "eval/compensation_pct_of_spend",
                "eval/auctionnet_score", "eval/gmv_of_met_campaigns", "eval/spend_share/search",
                "reference/oracle_gmv", "reference/planner_gmv",
                "reference/best_baseline_gmv"}  # fmt: skip
    assert expected <= tags, expected - tags
    assert events.PluginTagToContent("hparams")
    evaluations = [json.loads(line) for line in run.evaluations.read_text().splitlines()]
    steps = [e["num_timesteps"] for e in evaluations]
    assert len(steps) >= 2 and steps == sorted(steps)


def test_run_dir_is_never_overwritten(tmp_path: Path) -> None:
    config = validate_config(tiny())
    train(config, tmp_path / "run", progress=False, log=quiet)
    before = read_meta(tmp_path / "run" / "final")
    with pytest.raises(ValueError, match="already holds a run"):
        train(config, tmp_path / "run", progress=False, log=quiet)
    assert read_meta(tmp_path / "run" / "final") == before


def test_a_seed_reproduces_its_weights_with_several_torch_threads(tmp_path: Path) -> None:
    def weights(name: str, seed: int) -> dict:
        config = validate_config(tiny(seed=seed))
        train(config, tmp_path / name, progress=False, log=quiet, torch_threads=2)
        info = json.loads(RunPaths(tmp_path / name).versions.read_text())
        assert info["torch_threads"] == 2
        return load_checkpoint(tmp_path / name / "final").model.policy.state_dict()

    first, again, other = weights("a", 0), weights("b", 0), weights("c", 1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_resume_keeps_step_counter_optimizer_and_normalization(tmp_path: Path) -> None:
    config = validate_config(tiny())
    first = train(config, tmp_path / "run", progress=False, log=quiet, torch_threads=1)
    saved = load_checkpoint(first.checkpoint)
    saved_count = saved.normalization.obs_count
    assert saved.model.policy.optimizer.state_dict()["state"], "optimizer state not saved"

    messages: list[str] = []
    second = resume(tmp_path / "run", total_timesteps=384, progress=False, log=messages.append)
    assert not second.interrupted
    assert "torch threads: 1." in messages[0]  # the count the run recorded
    assert second.num_timesteps >= 384
    after = load_checkpoint(tmp_path / "run" / "final")
    # Normalization statistics continued from the checkpoint rather than restarting.
    assert after.normalization.obs_count > saved_count + 96
    assert after.model.num_timesteps == second.num_timesteps
    # The new target is recorded; a target already reached is a clear error.
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["total_timesteps"] == 384
    with pytest.raises(ValueError, match="already at step"):
        resume(tmp_path / "run", total_timesteps=300, progress=False, log=quiet)


def test_corrupt_and_foreign_checkpoints_fail_clearly_and_lose_nothing(tmp_path: Path) -> None:
    config = validate_config(tiny())
    train(config, tmp_path / "run", progress=False, log=quiet)
    run = RunPaths(tmp_path / "run")
    intact = (run.list_checkpoints()[-1] / "model.zip").read_bytes()
    for state in (*run.list_checkpoints(), run.best, run.final):  # resume falls back past one
        (state / "model.zip").write_bytes(b"not a zip archive")
    files = sorted(p for p in run.root.rglob("*") if p.is_file() and "tb" not in p.parts)
    before = {p: p.read_bytes() for p in files}

    proc = cli("train", "--resume", str(run.root), "--total-timesteps", "400", cwd=tmp_path)
    assert proc.returncode == 2
    assert "corrupt" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    after = sorted(p for p in run.root.rglob("*") if p.is_file() and "tb" not in p.parts)
    unchanged = {p: p.read_bytes() for p in files if p.name != LOCK_FILE}  # records its holder
    assert after == files and unchanged == {p: before[p] for p in unchanged}  # nothing lost

    # A checkpoint from an environment with another observation size.
    meta_path = run.best / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "obs_dim": OBS_DIM - 2}))
    with pytest.raises(ValueError, match="incompatible environment version"):
        load_run_policy(run.root)
    # A foreign directory and corrupt normalization statistics.
    with pytest.raises(ValueError, match="not a budgetgym"):
        load_run_policy(tmp_path)
    checkpoint = run.list_checkpoints()[-1]
    (checkpoint / "model.zip").write_bytes(intact)
    (checkpoint / "vecnormalize.npz").write_bytes(b"\x80garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_run_policy(checkpoint)


def test_bad_config_on_the_command_line(tmp_path: Path) -> None:
    data = tiny(hyperparams={"n_steps": 24, "batch_size": 48, "n_epochz": 1})
    proc = cli("train", "--config", str(write_config(tmp_path, data)), cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert "hyperparams.n_epochz" in proc.stdout and "n_epochs" in proc.stdout
    assert "Traceback" not in proc.stderr and len(lines) <= 3
    proc = cli("train", "--config", "ppo_quick", "--torch-threads", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "--torch-threads must be >= 1, got 0" in proc.stdout
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    data = tiny(total_timesteps=200_000, checkpoint={"save_freq": 0})
    config = write_config(tmp_path, data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "budgetgym.scripts.cli", "train", "--config", str(config),
         "--run-dir", "run", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run = RunPaths(tmp_path / "run")
    wait_for_file(run.evaluations, proc)  # training is under way: the first validation is done
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    saved = run.list_checkpoints()
    assert len(saved) == 1
    step = read_meta(saved[0])["num_timesteps"]
    assert 0 < step < 200_000
    assert not run.final.exists()
    result = resume(run.root, total_timesteps=step + 96, progress=False, log=quiet)
    assert result.num_timesteps >= step + 96


def test_scenario_list_trains_on_each_scenario(tmp_path: Path) -> None:
    config = validate_config(tiny(env={"scenario": ["hit_product", "double11_promotion"]}))
    venv = make_train_env(config, seed=5)
    obs = venv.reset()
    assert obs.shape == (4, OBS_DIM)
    names = venv.get_attr("scenario")
    assert names == ["hit_product", "hit_product", "double11_promotion", "double11_promotion"]
    for _ in range(24):
        obs, reward, done, infos = venv.step(np.zeros((4, 7), dtype=np.float32))
    assert done.all() and "terminal_observation" in infos[0] and "episode" in infos[0]
    # ... and with the advantages standardized per scenario.
    config = validate_config(
        tiny(
            env={"scenario": ["hit_product", "double11_promotion"]},
            hyperparams={"scenario_advantage_norm": True},
        )
    )
    result = train(config, tmp_path / "run", progress=False, log=quiet)
    assert result.num_timesteps >= 192
    assert "scenario_advantage_norm: true" in RunPaths(tmp_path / "run").config.read_text()


def test_dense_roi_penalty_telescopes_to_the_terminal_penalty() -> None:
    """Hourly penalty changes sum to ``gmv_roi_penalty``'s end-of-campaign penalty."""
    horizon, coef, n = 24, 2.0, 6
    terminal = BudgetVecEnv(n, "high_price_long_cycle", "gmv_roi_penalty", coef, horizon)
    dense = DenseRoiPenalty(BudgetVecEnv(n, "high_price_long_cycle", "gmv", 0.0, horizon), coef)
    for venv in (terminal, dense):
        venv.seed(11)
        venv.reset()
    rng = np.random.default_rng(0)
    totals = np.zeros((2, n))
    hourly_penalty = False
    for hour in range(horizon):
        actions = rng.uniform(-1, 1, (n, 7)).astype(np.float32)
        actions[:, 0] = 0.8  # overspend early so that the ROI target is missed
        _, r_terminal, done, _ = terminal.step(actions)
        _, r_dense, done_dense, infos = dense.step(actions)
        assert (done == done_dense).all()
        if hour < horizon - 1:
            hourly_penalty |= bool((r_dense < r_terminal - 1e-6).any())
        totals += [r_terminal, r_dense]
    assert done.all()
    assert hourly_penalty  # the penalty is charged before the last hour
    missed = np.array([i["compensation"] > 0 for i in infos])
    assert missed.any()  # the terminal penalty is not zero for every campaign
    np.testing.assert_allclose(totals[1], totals[0], rtol=1e-5, atol=1e-5)
    config = validate_config(tiny(env={"reward_shaping": "dense_roi_penalty"}))
    assert isinstance(make_train_env(config, seed=1).venv, DenseRoiPenalty)


def test_roi_miss_penalty_charges_each_missed_campaign_once_at_the_end() -> None:
    horizon, n, penalty = 12, 8, 0.25
    args = (n, "hit_product", "gmv_roi_penalty", 1.0, horizon)
    plain, priced = BudgetVecEnv(*args), RoiMissPenalty(BudgetVecEnv(*args), penalty)
    for venv in (plain, priced):
        venv.seed(3)
        venv.reset()
    rng = np.random.default_rng(1)
    for _ in range(horizon):
        actions = rng.uniform(-1, 1, (n, 7)).astype(np.float32)
        actions[: n // 2, 0] = -1.0  # spend nothing: these campaigns cannot miss
        _, r_plain, _, _ = plain.step(actions)
        _, r_priced, done, infos = priced.step(actions)
        missed = np.array([i["compensation"] > 0 for i in infos])  # ROI below target
        expected = r_plain - penalty * (done & missed)
        np.testing.assert_allclose(r_priced, expected, rtol=1e-6, atol=1e-6)
    assert done.all() and missed.any() and not missed.all()  # both kinds of campaign were seen
    config = validate_config(tiny(env={"roi_miss_penalty": 0.1}))
    assert isinstance(make_train_env(config, seed=1).venv, RoiMissPenalty)
    with pytest.raises(ValueError, match="roi_miss_penalty"):
        validate_config(tiny(env={"roi_miss_penalty": -1.0}))


@pytest.mark.parametrize(
    "reward_config",
    [
        {"reward_mode": "gmv"},
        # the twin pays the hourly ROI charge too (early hours owe it: conversions lag spend);
        # unequal scenario slices (4 and 2 campaigns)
        {
            "reward_shaping": "dense_roi_penalty",
            "twin_pays_roi_charge": True,
            "scenario_weights": [2, 1],
        },
    ],
    ids=["gmv", "dense-charged-twin"],
)
def test_paired_baseline_cancels_the_campaign_luck_and_leaves_the_logged_return(
    reward_config: dict,
) -> None:
    # The residual policy with a zero correction is its base rule, so each campaign and its twin
    # (same seed, same rule) earn the same reward every hour: the paired reward is exactly
    # zero, across the episode boundary and in both scenarios' slices.
    horizon = 6
    config = validate_config(
        tiny(
            residual_base="obs_pacing",
            env={
                "scenario": ["hit_product", "double11_promotion"],
                "n_envs": 6,
                "horizon_hours": horizon,
                "paired_baseline": "obs_pacing",
                **reward_config,
            },
        )  # fmt: skip
    )
    venv = make_train_env(config, seed=5)
    assert isinstance(venv.venv, PairedBaseline)
    assert venv.twins is venv.venv  # one base call for the campaigns and their twins
    sizes = [env.num_envs for env in venv.venv.envs]
    assert sizes == ([4, 2] if "scenario_weights" in reward_config else [3, 3])
    venv.reset()
    zero = np.zeros((6, 7), dtype=np.float32)
    for _ in range(2 * horizon):  # two episodes: the twins follow the reset to new seeds
        _, reward, done, infos = venv.step(zero)
        np.testing.assert_array_equal(reward, 0.0)
    assert done.all()
    # VecMonitor logs the absolute return (the paired one is exactly zero); GMV alone is > 0
    logged = np.array([info["episode"]["r"] for info in infos])
    assert (logged > 0).all() if reward_config.get("reward_mode") == "gmv" else (logged != 0).all()
    # Another policy: the paired reward is its reward minus the rule's on the same seeds.
    rng = np.random.default_rng(2)
    unpaired = {**config.env.model_dump(), "paired_baseline": "none", "twin_pays_roi_charge": False}
    plain, rule = (
        make_train_env(validate_config(tiny(residual_base="obs_pacing", env=unpaired)), seed=5)
        for _ in range(2)
    )
    for env in (venv, plain, rule):
        env.seed(9)
        env.reset()
    for _ in range(horizon):
        actions = rng.uniform(-0.5, 0.5, (6, 7)).astype(np.float32)
        _, paired, _, _ = venv.step(actions)
        _, own, _, _ = plain.step(actions)
        _, base, _, _ = rule.step(zero)
        np.testing.assert_allclose(paired, own - base, rtol=1e-5, atol=1e-6)
        assert np.abs(paired).max() > 0  # the correction changed something


def test_paired_baseline_plays_its_rule_alone_and_residual_action_checks_the_twins_rule() -> None:
    # Without a residual policy on the same rule the twins' actions come from their own call:
    # playing that rule on the campaigns earns exactly the twins' reward.
    horizon = 4
    env = {"scenario": "hit_product", "n_envs": 4, "horizon_hours": horizon}
    config = validate_config(
        tiny(
            residual_base="none", env={**env, "paired_baseline": "obs_pacing", "reward_mode": "gmv"}
        )
    )
    venv = make_train_env(config, seed=3)
    assert isinstance(venv, PairedBaseline)
    obs = venv.reset()
    for _ in range(horizon):
        obs, reward, _, _ = venv.step(base_action("obs_pacing", obs))
        np.testing.assert_array_equal(reward, 0.0)
    with pytest.raises(ValueError, match="twins' rule 'obs_pacing' is not the residual base"):
        ResidualAction(venv, "obs_thompson", venv)
    other = validate_config(
        tiny(residual_base="obs_thompson", env={**env, "paired_baseline": "obs_pacing"})
    )
    assert make_train_env(other, seed=3).twins is None


#: Student t distribution's 97.5% quantile: 1 degree of freedom (Cauchy, tan(0.475 pi)) and 3.
T_975_1_DOF, T_975_3_DOF = math.tan(0.475 * math.pi), 3.18244630528371


def test_mean_ci_is_the_student_t_interval() -> None:
    # 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), half-width t(0.975, 3) * sd / 2.
    assert mean_ci([1.0, 2.0, 3.0, 4.0]) == pytest.approx(
        (2.5, T_975_3_DOF * np.sqrt(5.0 / 3.0) / 2.0), rel=1e-10
    )
    assert mean_ci([7.0]) == (7.0, 0.0)


@pytest.mark.slow
def test_several_seeds_in_parallel(tmp_path: Path) -> None:
    final = {"final_episodes": 3, "final_scenarios": ["hit_product"]}
    config = write_config(tmp_path, tiny(total_timesteps=96, eval=final))
    proc = cli("train", "--config", str(config), "--seeds", "0", "1", "--workers", "2",
               "--run-dir", "seeds", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "seeds"
    summary = json.loads((root / "aggregate.json").read_text())
    # Validation GMV over the two seeds: the mean and the Student-t 95% half-width of their final
    # validations, t(0.975, 1 dof) * sd / sqrt(2) = t * |a - b| / 2.
    finals = [read_evaluations(root / f"seed_{s}")[-1]["gmv"] for s in (0, 1)]
    assert finals[0] != finals[1]
    expected = (sum(finals) / 2, T_975_1_DOF * abs(finals[0] - finals[1]) / 2)
    assert summary["validation"]["gmv"] == pytest.approx(expected, rel=1e-10)
    assert (root / "learning_curves.png").stat().st_size > 0
    configs = [root / f"seed_{s}" / "config.yaml" for s in (0, 1)]
    seeds = [yaml.safe_load(path.read_text())["seed"] for path in configs]
    assert seeds == [0, 1]
    # the workers share the cores
    for s in (0, 1):
        info = json.loads(RunPaths(root / f"seed_{s}").versions.read_text())
        assert info["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)
    # held out: each seed's paired difference from the best rule, and its verdict
    held_out = summary["held_out"]["hit_product"]
    assert held_out["episodes"] == [3.0, 0.0] and "paired_gmv_diff_pct" in held_out
    assert len(summary["beats_best_rule"]["hit_product"]) == 2
    assert "| hit_product | " in (root / "aggregate.md").read_text().split("Against the best")[1]


@pytest.mark.parametrize(
    ("algorithm", "hyperparams"),
    [
        ("sac", {"learning_starts": 0, "buffer_size": 1000, "batch_size": 32}),
        ("recurrent_ppo", {"n_steps": 24, "batch_size": 48, "n_epochs": 1,
                           "policy_kwargs": {"lstm_hidden_size": 16}}),
    ],
)  # fmt: skip
def test_other_algorithms_train_resume_and_load(
    tmp_path: Path, algorithm: str, hyperparams: dict
) -> None:
    data = {**tiny(total_timesteps=48), "algorithm": algorithm, "hyperparams": hyperparams}
    train(validate_config(data), tmp_path / "run", progress=False, log=quiet)
    first = read_meta(tmp_path / "run" / "final")["num_timesteps"]
    result = resume(tmp_path / "run", total_timesteps=first + 48, progress=False, log=quiet)
    assert result.num_timesteps >= first + 48
    assert read_meta(tmp_path / "run" / "final")["algorithm"] == algorithm
    policy = load_run_policy(tmp_path / "run")
    obs = np.zeros((3, OBS_DIM), dtype=np.float32)
    actions, _ = policy.predict(obs)
    assert actions.shape == (3, 7) and np.abs(actions).max() <= 1.0


def test_standardize_by_group_gives_each_group_mean_0_and_sd_1() -> None:
    values = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [2.0, 20.0, 7.0]])
    groups = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 3]])
    out = standardize_by_group(values, groups)
    for group in (0, 1):
        part = out[groups == group]
        assert part.mean() == pytest.approx(0.0, abs=1e-12)
        assert part.std() == pytest.approx(1.0, rel=1e-6)
    # Groups 0 and 1 differ 10x in scale and come out the same.
    np.testing.assert_allclose(out[:, 0], out[:, 1], rtol=1e-6)
    assert (out[groups >= 2] == 0.0).all()  # constant and single-value groups: centred only


def test_scenario_advantage_norm_records_each_steps_scenarios_across_episodes() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    # Rollouts of 36 hours over 24-hour episodes: campaigns change mid-rollout.
    config = validate_config(
        tiny(
            env={"scenario": "mixed", "n_envs": 12},
            hyperparams={"n_steps": 36, "scenario_advantage_norm": True},
        )
    )
    venv = make_train_env(config, seed=3)
    norm = ScenarioAdvantageNorm()
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Probe(BaseCallback):
        def _on_rollout_start(self) -> None:
            self.first = campaign_scenarios(self.training_env)

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            seen.append((np.stack(norm._rows), self.model.rollout_buffer.advantages.copy()))

    model = PPO("MlpPolicy", venv, n_steps=36, batch_size=48, n_epochs=1, seed=0)
    model.learn(36 * 12 * 2, callback=[norm, Probe()])
    (rows, advantages), _ = seen
    assert rows.shape == advantages.shape == (36, 12)
    first, second = rows[0], rows[24]
    assert (rows[:24] == first).all() and (rows[24:] == second).all()
    assert (first != second).any()  # new campaigns, new scenarios
    assert len(np.unique(rows)) >= 3
    for scenario in np.unique(rows):
        part = advantages[rows == scenario]
        if part.size > 1 and np.ptp(part) > 0:
            assert part.mean() == pytest.approx(0.0, abs=1e-6)
            assert part.std() == pytest.approx(1.0, rel=1e-4)


def test_campaign_scenarios_of_a_scenario_list_and_a_bare_vec_env() -> None:
    config = validate_config(tiny(env={"scenario": ["hit_product", "double11_promotion"]}))
    venv = make_train_env(config, seed=5)
    venv.reset()
    hit, d11 = "hit_product", "double11_promotion"
    np.testing.assert_array_equal(campaign_scenarios(venv), [hit, hit, d11, d11])
    with pytest.raises(ValueError, match="No BudgetVecEnv"):
        campaign_scenarios(DummyVecEnv([lambda: gymnasium.make("CartPole-v1")]))


def test_excluded_features_by_name_channel_and_group() -> None:
    from budgetgym.agents.features import LAST_HOUR_FEATURES, excluded_indices
    from budgetgym.envs.campaigns import OBS_FEATURES

    names = [OBS_FEATURES[i] for i in excluded_indices(["last_hour"])]
    assert len(names) == len(LAST_HOUR_FEATURES) * 6
    assert {name.split("/")[1] for name in names} == set(LAST_HOUR_FEATURES)
    both = [OBS_FEATURES[i] for i in excluded_indices(["progress", "search/log_cpm"])]
    assert both == ["progress", "search/log_cpm"]
    assert len(excluded_indices(["log_matured_roi"])) == 7  # the global one and each channel's
    with pytest.raises(ValueError, match="leaves no observation feature"):
        excluded_indices(list(OBS_FEATURES))


def test_bench_train_runs_the_configs_policy(tmp_path: Path) -> None:
    """The benchmark builds the model as training does (custom policy class, feature subset,
    scenario mix replaced by ``--scenario``) and writes its JSON, naming the scenario."""
    data = tiny(
        env={"scenario": ["mixed", "new_product_cold_start"], "scenario_weights": [1, 1]},
        hyperparams={
            "policy_kwargs": {"action_weight_decay": 2.0, "exclude_features": ["last_hour"]}
        },
    )
    config = write_config(tmp_path, data)
    out = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_train.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--config", str(config), "--timesteps", "96", "--json",
         str(out), "--scenario", "low_ctr_creative"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["ppo_env_steps_per_s"] > 0 and result["ppo_dummyvec_env_steps_per_s"] > 0
    assert result["n_envs"] == 4 and result["scenario"] == "low_ctr_creative"
