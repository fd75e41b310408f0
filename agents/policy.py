"""The policy interface shared by baselines, the oracle, trained agents and exported models.

A policy acts on a batch: ``predict(obs (n, obs_dim)) -> (actions (n, k + 1), None)``
with Stable-Baselines3's signature, after ``reset(campaigns)`` at the start of every batch of
episodes. A policy that plans spend in CNY (the oracle) sets ``acts_in_spend = True`` and
exposes ``spend(obs) -> (n, n_channels)`` instead; the evaluation harness then steps
``BatchedCampaigns.step_spend``. :func:`as_policy` wraps a Stable-Baselines3 model into this
interface (the evaluation harness calls it, so such a model can be passed as it is).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from budgetgym.agents.baselines import BASELINE_NAMES, BASELINES
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.errors import unknown_name_error

ORACLE = "oracle"
PLANNER = "planner"
PLANNER_CC = "planner_cc"
#: Policies that read ground truth (the campaign's true parameters): references, not deployable.
PRIVILEGED = (ORACLE, PLANNER, PLANNER_CC)
PLANNER_CC_ALPHA = 0.05  # planner_cc's risk: realized ROI below target in 5% of campaigns


@runtime_checkable
class Policy(Protocol):
    """What the evaluation harness needs from a policy.

    Attributes:
        name: label used in reports.
    """

    name: str

    def reset(self, campaigns: BatchedCampaigns) -> None:
        """Start a batch of ``campaigns.n_envs`` episodes (clear per-episode state, plan)."""

    def predict(
        self,
        obs: np.ndarray,
        state: object = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions ``(n, k + 1)`` in ``[-1, 1]`` for observations ``(n, obs_dim)`` (``k``
        channels; see :class:`~budgetgym.envs.features.ObservationLayout`)."""


def as_policy(policy: Any) -> Policy:
    """``policy`` as the harness needs it: a Stable-Baselines3 model (any ``BaseAlgorithm``)
    wrapped into :class:`~budgetgym.agents.checkpoints.SB3Policy`, anything else unchanged.

    The wrapper feeds the model the observations it was trained on: normalized by the
    ``VecNormalize`` in the model's env when it has one (its statistics are copied, frozen), and
    raw otherwise. A model trained under ``VecNormalize`` but loaded on its own
    (``PPO.load(path)`` with no env) has lost those statistics, so it would see raw observations
    and act on numbers unlike any it trained on: load it with its env
    (``PPO.load(path, env=VecNormalize.load(stats, venv))``), or load a run directory with
    :func:`load_policy`. Likewise a residual policy adds its rule's action only when the
    model's env holds the ``ResidualAction`` wrapper that names the rule, and an ROI guard
    acts when it holds the ``RoiGuardAction`` wrapper.
    """
    base_class = sys.modules.get("stable_baselines3.common.base_class")  # absent: not SB3
    if base_class is None or not isinstance(policy, base_class.BaseAlgorithm):
        return policy
    from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET
    from budgetgym.agents.checkpoints import ObsNormalizer, SB3Policy, algorithm_name
    from budgetgym.agents.residual import residual_base_of, venv_channels
    from budgetgym.agents.wrappers import roi_guard_of

    vecnorm = policy.get_vec_normalize_env()
    env = policy.get_env()
    channels = DEFAULT_CHANNEL_SET if env is None else venv_channels(env)
    normalizer = (
        ObsNormalizer.identity(channels.obs_dim)
        if vecnorm is None
        else ObsNormalizer.from_vecnormalize(vecnorm)
    )
    residual_base = "none" if env is None else residual_base_of(env)
    guard = None if env is None else roi_guard_of(env)
    name = algorithm_name(policy)
    return SB3Policy(policy, normalizer, name, residual_base, None, channels, guard)


def unavailable(policy: Any, scenario: str) -> str | None:
    """Why ``policy`` cannot run on ``scenario`` (a policy that needs per-scenario data says so
    in ``unavailable_on(scenario)``), or None."""
    check = getattr(policy, "unavailable_on", None)
    return None if check is None else check(scenario)


def policy_names() -> tuple[str, ...]:
    """Names ``load_policy`` accepts besides paths: the baselines and the references."""
    return (*BASELINE_NAMES, *PRIVILEGED)


def load_policy(spec: str) -> Policy:
    """Build a policy from a name or a path.

    Args:
        spec: a baseline name (``BASELINES``), a reference (``"oracle"``, ``"planner"``,
            ``"planner_cc"`` at ``alpha = 0.05``), a ``.onnx`` file exported by
            ``budgetgym export``, or a training run directory.

    Raises:
        ValueError: an unknown name (lists the valid ones and the closest match).
        FileNotFoundError: a path that does not exist.
    """
    if spec in BASELINES:
        return BASELINES[spec]()
    if spec == ORACLE:
        from budgetgym.agents.oracle import OraclePolicy

        return OraclePolicy()
    if spec in (PLANNER, PLANNER_CC):
        from budgetgym.agents.planner import PlannerPolicy

        return PlannerPolicy(alpha=None if spec == PLANNER else PLANNER_CC_ALPHA)
    path = Path(spec)
    looks_like_path = path.suffix == ".onnx" or "/" in spec or "\\" in spec or path.exists()
    if not looks_like_path:
        valid = (*policy_names(), "a run directory", "an .onnx file")
        raise unknown_name_error("policy", spec, valid)
    if not path.exists():
        raise FileNotFoundError(f"Policy path {spec!r} does not exist.")
    if path.is_file():
        if path.suffix != ".onnx":
            raise ValueError(f"Policy file {spec!r} is not an .onnx model.")
        from budgetgym.agents.export import OnnxPolicy

        return OnnxPolicy(path)
    if not any(path.rglob("*.zip")) and not any(path.rglob("*.onnx")):
        raise FileNotFoundError(
            f"Run directory {spec!r} contains no model (no .zip checkpoint or .onnx file)."
        )
    from budgetgym.agents.checkpoints import load_run_policy

    return load_run_policy(path)
