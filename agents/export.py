"""ONNX export of trained runs, and ``OnnxPolicy`` to evaluate an exported file.

The exported graph takes the *raw* observation ``obs: float32 (batch, obs_dim)`` and returns
the deterministic action ``action: float32 (batch, k + 1)`` in ``[-1, 1]`` (``k`` channels of
the scenario the policy was trained on): observation
normalization (the run's frozen ``VecNormalize`` statistics, with clipping) and the action
post-processing (clipping for PPO's Gaussian, unscaling for SAC's squashed output, and for a
residual policy the base rule's action added to the raw observation's, and an ROI guard on the
pace: :mod:`budgetgym.agents.roi_guard`) are part of the graph, so the file alone reproduces
``SB3Policy.predict(obs, deterministic=True)``.

A recurrent PPO policy (sb3-contrib's ``RecurrentActorCriticPolicy``) exports its actor with the
LSTM state as graph inputs and outputs: ``obs (batch, obs_dim)``, ``hidden`` and ``cell``
``(n_layers, batch, lstm_hidden_size)`` and ``episode_start (batch,)`` (1.0 where a campaign
starts: the state is zeroed first) in; ``action``, ``hidden_out`` and ``cell_out`` out. The
critic's LSTM is not exported: acting never reads it. :class:`OnnxPolicy` carries the state
between calls as ``SB3Policy`` does.

A policy trained with a privileged critic (:mod:`budgetgym.agents.privileged`) exports its actor
alone, on the normal observation: the graph is the same as without the critic's extra inputs.

A sidecar JSON (``policy.json`` next to ``policy.onnx``) records the spaces, the scenario(s) the
policy was trained on, its channel list (names, billing, launch support), the environment
signature and the versions (and, for a recurrent policy, the state's inputs, outputs and
shapes); :class:`OnnxPolicy` refuses campaigns on another channel list.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from budgetgym.agents.algorithms import ExportHead, algorithm_spec
from budgetgym.agents.channel_set import ChannelSet, channels_of
from budgetgym.agents.checkpoints import (
    RunPaths,
    SB3Policy,
    algorithm_name,
    check_env_id,
    check_obs,
    env_signature,
    episode_starts,
    load_run_policy,
    read_meta,
    recorded_channels,
    resolve_checkpoint,
    versions,
    write_json,
)
from budgetgym.agents.residual import base_action_torch
from budgetgym.agents.roi_guard import RoiGuard, guard_actions
from budgetgym.envs import ENV_ID

ONNX_FORMAT = "budgetgym-onnx/1"
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
#: A recurrent policy's further inputs (the LSTM state and the episode starts) and outputs.
STATE_INPUTS = ("hidden", "cell", "episode_start")
STATE_OUTPUTS = ("hidden_out", "cell_out")


def _module(policy: SB3Policy) -> Any:
    """A torch module ``raw obs -> deterministic action`` for an SB3 PPO or SAC policy, or
    ``(raw obs, hidden, cell, episode_start) -> (action, hidden, cell)`` for a recurrent PPO.

    The graph calls the networks' layers directly, not SB3's distribution objects: their
    argument validation branches on tensor values, which ``torch.export`` cannot trace.
    """
    import torch
    from stable_baselines3.common.policies import BaseModel
    from torch import nn

    class OnnxableSB3Policy(nn.Module):
        """Normalization + SB3 actor + action post-processing in one ``forward``."""

        def __init__(
            self,
            sb3_policy: Any,
            normalizer: Any,
            head: ExportHead,
            low,
            high,
            residual_base: str,
            channels: ChannelSet,
            roi_guard: RoiGuard | None,
        ) -> None:
            super().__init__()
            self.policy = sb3_policy
            self.head = head
            self.residual_base = residual_base
            self.roi_guard = roi_guard
            self.channels = channels
            self.normalize = bool(normalizer.enabled)
            self.clip_obs = float(normalizer.clip_obs)
            # float64 like VecNormalize, so that normalized inputs match SB3's bit for bit.
            self.register_buffer("mean", torch.as_tensor(normalizer.mean, dtype=torch.float64))
            std = np.sqrt(normalizer.var + normalizer.epsilon)
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64))
            self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:  # name used by dynamic_shapes
            return self.with_base(obs, self.action(self.normalized(obs)))

        def normalized(self, obs: torch.Tensor) -> torch.Tensor:
            """``VecNormalize``'s transform of raw observations."""
            if not self.normalize:
                return obs
            obs = (obs.to(torch.float64) - self.mean) / self.std
            return torch.clamp(obs, -self.clip_obs, self.clip_obs).to(torch.float32)

        def with_base(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            """The network's ``action`` plus a residual base's for raw ``obs`` (clipped),
            under the ROI guard."""
            if self.residual_base != "none":  # see budgetgym.agents.residual
                base = base_action_torch(self.residual_base, obs, self.channels)
                action = torch.clamp(base + action, -1.0, 1.0)
            if self.roi_guard is None:
                return action
            return guard_actions(self.roi_guard, obs, action, self.channels)

        def action(self, obs: torch.Tensor) -> torch.Tensor:
            """The network's deterministic action (the correction, for a residual policy) for
            normalized observations."""
            if self.head == "squashed_gaussian":
                return self.sac_action(obs)
            return self.gaussian_mean(self.policy.mlp_extractor.forward_actor(self.features(obs)))

        def features(self, obs: torch.Tensor) -> torch.Tensor:
            """The actor's features (its own extractor's, also when the critic has another)."""
            return BaseModel.extract_features(self.policy, obs, self.policy.pi_features_extractor)

        def gaussian_mean(self, latent: torch.Tensor) -> torch.Tensor:
            """PPO's mean action for the actor's latent, clipped to the space as SB3 does."""
            mean_action = self.policy.action_net(latent)
            return torch.maximum(torch.minimum(mean_action, self.high), self.low)

        def sac_action(self, obs: torch.Tensor) -> torch.Tensor:
            """SAC's squashed mean ``tanh(mu(latent_pi(features)))``, unscaled to the space."""
            actor = self.policy.actor
            latent = actor.latent_pi(actor.extract_features(obs, actor.features_extractor))
            squashed = torch.tanh(actor.mu(latent))  # mu ends in a Hardtanh with gSDE
            return self.low + 0.5 * (squashed + 1.0) * (self.high - self.low)  # unscale_action

    class OnnxableRecurrentPolicy(OnnxableSB3Policy):
        """One step of sb3-contrib's recurrent actor: the state in, the new state out."""

        def forward(  # names used by dynamic_shapes
            self,
            obs: torch.Tensor,
            hidden: torch.Tensor,
            cell: torch.Tensor,
            episode_start: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            sb3 = self.policy
            features = self.features(self.normalized(obs))
            keep = (1.0 - episode_start).view(1, -1, 1)  # zero the state of new campaigns
            state = (keep * hidden, keep * cell)
            out, (hidden, cell) = sb3.lstm_actor(features.unsqueeze(0), state)
            latent = sb3.mlp_extractor.forward_actor(out.squeeze(0))
            return self.with_base(obs, self.gaussian_mean(latent)), hidden, cell

    name = algorithm_name(policy.model)
    head = algorithm_spec(name).export
    if head is None:
        raise ValueError(f"Algorithm {name!r} does not export its policy to ONNX.")
    space = policy.model.action_space
    module_class = OnnxableRecurrentPolicy if policy.recurrent else OnnxableSB3Policy
    module = module_class(
        policy.model.policy, policy.normalizer, head, space.low, space.high,
        policy.residual_base, policy.channels, policy.roi_guard,
    )  # fmt: skip
    return module.eval()


def default_export_path(run_dir: str | Path) -> Path:
    """``DIR/export/policy.onnx`` for a run directory (or the run of a checkpoint directory)."""
    path = Path(run_dir)
    if (path / "meta.json").is_file() and not (path / "config.yaml").is_file():
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path / "export" / "policy.onnx"


def export_onnx(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Export the run's policy (``best/``, else ``final/``, else the latest checkpoint) to ONNX.

    Writes ``out`` (default ``DIR/export/policy.onnx``) and a sidecar ``.json``; checks the
    file with ``onnx.checker``. Returns the ONNX path.

    Raises:
        FileNotFoundError: no such run.
        ValueError: corrupt/incompatible checkpoint.
    """
    import onnx
    import torch

    checkpoint = resolve_checkpoint(run_dir)
    meta = read_meta(checkpoint)
    policy = load_run_policy(run_dir)
    module = _module(policy)
    out_path = Path(out) if out is not None else default_export_path(run_dir)
    if out_path.suffix != ".onnx":
        raise ValueError(f"The output file must end in .onnx, got {out_path}.")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n = 2  # example batch
    batch = torch.export.Dim("batch", min=1)
    example: tuple[torch.Tensor, ...] = (torch.zeros(n, policy.channels.obs_dim),)
    inputs, outputs = [INPUT_NAME], [OUTPUT_NAME]
    dynamic_shapes: dict[str, Any] = {"obs": {0: batch}}
    state = lstm_state_shape(policy.model) if policy.recurrent else None
    if state is not None:
        zeros = torch.zeros(state[0], n, state[1])
        example = (*example, zeros, zeros.clone(), torch.zeros(n))
        inputs, outputs = [*inputs, *STATE_INPUTS], [*outputs, *STATE_OUTPUTS]
        dynamic_shapes.update(hidden={1: batch}, cell={1: batch}, episode_start={0: batch})
    with warnings.catch_warnings(), _quiet_torch_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=dynamic_shapes,
            dynamo=True,
            verbose=False,
        )
        program.save(str(out_path))
    onnx.checker.check_model(str(out_path))
    write_json(out_path.with_suffix(".json"), sidecar(run_dir, checkpoint, meta, state))
    return out_path


def lstm_state_shape(model: Any) -> tuple[int, int]:
    """``(n_layers, lstm_hidden_size)`` of a recurrent PPO model's actor LSTM: its state is
    ``(n_layers, batch, lstm_hidden_size)``."""
    lstm = model.policy.lstm_actor
    return int(lstm.num_layers), int(lstm.hidden_size)


class _quiet_torch_logs:  # noqa: N801 (context manager used like a function)
    """Silence torch.onnx's informational logging during export."""

    def __enter__(self) -> None:
        self.saved = {}
        for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx"):
            logger = logging.getLogger(name)
            self.saved[name] = logger.level
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for name, level in self.saved.items():
            logging.getLogger(name).setLevel(level)


def sidecar(
    run_dir: str | Path,
    checkpoint: Path,
    meta: dict[str, Any],
    lstm_state: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Metadata written next to the ONNX file of a run's checkpoint (:func:`policy_sidecar`)."""
    config_path = RunPaths(Path(default_export_path(run_dir)).parent.parent).config
    scenario: Any = None
    if config_path.is_file():
        import yaml

        scenario = (yaml.safe_load(config_path.read_text()) or {}).get("env", {}).get("scenario")
    return policy_sidecar(
        recorded_channels(meta, checkpoint),
        scenario=scenario,
        algorithm=meta.get("algorithm"),
        residual_base=meta.get("residual_base", "none"),
        roi_guard=meta.get("roi_guard"),
        num_timesteps=meta.get("num_timesteps"),
        source=str(checkpoint),
        lstm_state=lstm_state,
    )


def policy_sidecar(
    channels: ChannelSet,
    *,
    scenario: Any,
    algorithm: str | None,
    residual_base: str,
    num_timesteps: int | None,
    source: str | None,
    lstm_state: tuple[int, int] | None = None,
    roi_guard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``.json`` written next to an ONNX policy (format ``budgetgym-onnx/1``), which
    :class:`OnnxPolicy` checks on load: input and output names and shapes, the channel list and
    its environment signature, provenance and versions (``roi_guard``: the guard the graph
    applies, for the reader; None without one). ``lstm_state`` (``(n_layers, hidden
    size)``) adds a ``recurrent`` section describing a recurrent policy's state inputs and
    outputs."""
    obs_dim, action_dim = channels.obs_dim, channels.action_dim
    data = {
        "format": ONNX_FORMAT,
        "input": {"name": INPUT_NAME, "shape": ["batch", obs_dim], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", action_dim], "dtype": "float32"},
        "observation_space": {"low": "-inf", "high": "inf", "shape": [obs_dim]},
        "action_space": {"low": -1.0, "high": 1.0, "shape": [action_dim]},
        "observation_features": list(channels.layout.features),
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "channels": channels.records(),
        "env_id": ENV_ID,
        "env_signature": env_signature(channels),
        "scenario": scenario,
        "algorithm": algorithm,
        "residual_base": residual_base,
        "roi_guard": roi_guard,
        "num_timesteps": num_timesteps,
        "source_checkpoint": source,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(channels),
    }
    if lstm_state is not None:
        shape = [lstm_state[0], "batch", lstm_state[1]]
        data["recurrent"] = {
            "inputs": {
                "hidden": {"shape": shape, "dtype": "float32"},
                "cell": {"shape": shape, "dtype": "float32"},
                "episode_start": {"shape": ["batch"], "dtype": "float32"},
            },
            "outputs": {
                "hidden_out": {"shape": shape, "dtype": "float32"},
                "cell_out": {"shape": shape, "dtype": "float32"},
            },
            "usage": (
                "Start with zero states and episode_start 1.0; feed hidden_out and cell_out "
                "back as hidden and cell at the next hour, with episode_start 1.0 where a new "
                "campaign starts (its state is zeroed) and 0.0 elsewhere."
            ),
        }
    return data


class OnnxPolicy:
    """An exported ONNX policy behind the ``Policy`` interface (onnxruntime, CPU, 1 thread).

    A recurrent policy's graph (inputs ``obs``, ``hidden``, ``cell``, ``episode_start``) gets
    its LSTM state carried between calls, as ``SB3Policy`` does: zero at the first call, after
    ``reset`` and for another batch size, and zeroed by the graph for the campaigns whose
    ``episode_start`` is set.

    Args:
        path: the ``.onnx`` file; its sidecar ``.json``, when present, is checked against this
            simulator (observation size and environment signature of its channel list), and
            ``reset(campaigns)`` against the campaigns' channel list. Without a sidecar the
            policy is taken to act on the reference six channels.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a valid ONNX model, or made for another observation/action size.
    """

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX policy {self.path} does not exist.")
        self.name = name or self.path.stem
        self.meta = self._read_sidecar()
        self.channels = recorded_channels(self.meta, self.path.with_suffix(".json"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 (onnxruntime raises its own exception types)
            text = " ".join(str(err).split())[:160]
            raise ValueError(f"{self.path} is not a valid ONNX model ({text}).") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        names = tuple(i.name for i in inputs[1:])
        self.recurrent = bool(names)
        if (names and names != STATE_INPUTS) or len(outputs) < 1 + 2 * self.recurrent:
            raise ValueError(
                f"{self.path} must have one observation input and an action output (and for a "
                f"recurrent policy the inputs {', '.join(STATE_INPUTS)} after the observation, "
                f"the outputs {', '.join(STATE_OUTPUTS)} after the action)."
            )
        self.input_name = inputs[0].name
        #: ``(n_layers, hidden size)`` of a recurrent policy's LSTM state.
        self.state_shape = (inputs[1].shape[0], inputs[1].shape[2]) if self.recurrent else None
        self.state: tuple[np.ndarray, np.ndarray] | None = None
        in_dim, out_dim = inputs[0].shape[-1], outputs[0].shape[-1]
        obs_dim, action_dim = self.channels.obs_dim, self.channels.action_dim
        if in_dim != obs_dim or (isinstance(out_dim, int) and out_dim != action_dim):
            raise ValueError(
                f"ONNX policy {self.path} takes observations of size {in_dim} and returns actions "
                f"of size {out_dim}, but this simulator has {obs_dim} and {action_dim} on the "
                f"channels {list(self.channels.names)}: it comes from an incompatible "
                "environment version."
            )

    def _read_sidecar(self) -> dict[str, Any]:
        path = self.path.with_suffix(".json")
        if not path.is_file():
            return {}
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise ValueError(f"Sidecar {path} of the ONNX policy is not valid JSON.") from None
        check_env_id(meta, f"ONNX policy {self.path}")
        signature = meta.get("env_signature")
        channels = recorded_channels(meta, path)
        expected = env_signature(channels)
        if meta.get("obs_dim", channels.obs_dim) != channels.obs_dim or (
            signature and signature != expected
        ):
            raise ValueError(
                f"ONNX policy {self.path} was exported for another observation layout "
                f"(obs_dim {meta.get('obs_dim')}, signature {signature}); this simulator has "
                f"obs_dim {channels.obs_dim}, signature {expected} on its channels."
            )
        return meta

    def reset(self, campaigns: Any = None) -> None:
        """Forget a recurrent policy's state; refuses ``campaigns`` on another channel list than
        the policy's."""
        if campaigns is not None:
            channels_of(campaigns).require_same(self.channels, f"ONNX policy {self.path}")
        self.state = None

    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Deterministic actions ``(n, k + 1)`` for raw observations ``(n, obs_dim)``; a
        recurrent policy also takes ``episode_start`` ``(n,)`` (default: True at the first call
        and after ``reset``, False after)."""
        arr = np.ascontiguousarray(check_obs(obs, self.channels))
        if not self.recurrent:
            (actions,) = self.session.run(None, {self.input_name: arr})[:1]
            return actions, None
        starts = episode_starts(self.state, len(arr), episode_start)
        if self.state is None or self.state[0].shape[1] != len(arr):
            zeros = np.zeros((self.state_shape[0], len(arr), self.state_shape[1]), np.float32)
            self.state = (zeros, zeros)
        feed = dict(zip(STATE_INPUTS, (*self.state, starts.astype(np.float32)), strict=True))
        actions, hidden, cell = self.session.run(None, {self.input_name: arr, **feed})[:3]
        self.state = (hidden, cell)
        return actions, None
