"""ONNX export of trained runs, and ``OnnxPolicy`` to evaluate an exported file.

The exported graph takes the *raw* observation ``obs: float32 (batch, obs_dim)`` and returns
the deterministic action ``action: float32 (batch, k + 1)`` in ``[-1, 1]`` (``k`` channels of
the scenario the policy was trained on): observation
normalization (the run's frozen ``VecNormalize`` statistics, with clipping) and the action
post-processing (clipping for PPO's Gaussian, unscaling for SAC's squashed output, and for a
residual policy the base rule's action added to the raw observation's) are part of the graph,
so the file alone reproduces ``SB3Policy.predict(obs, deterministic=True)``. A
sidecar JSON (``policy.json`` next to ``policy.onnx``) records the spaces, the scenario(s) the
policy was trained on, its channel list (names, billing, launch support), the environment
signature and the versions; :class:`OnnxPolicy` refuses campaigns on another channel list.

Recurrent PPO is not exported (its LSTM state would need extra inputs and outputs).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from budgetgym.agents.channel_set import ChannelSet, channels_of
from budgetgym.agents.checkpoints import (
    RunPaths,
    SB3Policy,
    algorithm_name,
    check_obs,
    env_signature,
    load_run_policy,
    read_meta,
    recorded_channels,
    resolve_checkpoint,
    versions,
    write_json,
)
from budgetgym.agents.residual import base_action_torch

ONNX_FORMAT = "budgetgym-onnx/1"
INPUT_NAME = "obs"
OUTPUT_NAME = "action"


def _module(policy: SB3Policy) -> Any:
    """A torch module ``raw obs -> deterministic action`` for an SB3 PPO or SAC policy.

    The graph calls the networks' layers directly, not SB3's distribution objects: their
    argument validation branches on tensor values, which ``torch.export`` cannot trace.
    """
    import torch
    from torch import nn

    class OnnxableSB3Policy(nn.Module):
        """Normalization + SB3 actor + action post-processing in one ``forward``."""

        def __init__(
            self,
            sb3_policy: Any,
            normalizer: Any,
            algorithm: str,
            low,
            high,
            residual_base: str,
            channels: ChannelSet,
        ) -> None:
            super().__init__()
            self.policy = sb3_policy
            self.algorithm = algorithm
            self.residual_base = residual_base
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
            action = self.action(obs)
            if self.residual_base != "none":  # see budgetgym.agents.residual
                base = base_action_torch(self.residual_base, obs, self.channels)
                action = torch.clamp(base + action, -1.0, 1.0)
            return action

        def action(self, obs: torch.Tensor) -> torch.Tensor:
            """The network's deterministic action (the correction, for a residual policy)."""
            if self.normalize:
                obs = (obs.to(torch.float64) - self.mean) / self.std
                obs = torch.clamp(obs, -self.clip_obs, self.clip_obs).to(torch.float32)
            if self.algorithm == "sac":
                return self.sac_action(obs)
            features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
            latent = self.policy.mlp_extractor.forward_actor(features)
            mean_action = self.policy.action_net(latent)
            return torch.maximum(torch.minimum(mean_action, self.high), self.low)  # SB3 clips

        def sac_action(self, obs: torch.Tensor) -> torch.Tensor:
            """SAC's squashed mean ``tanh(mu(latent_pi(features)))``, unscaled to the space."""
            actor = self.policy.actor
            latent = actor.latent_pi(actor.extract_features(obs, actor.features_extractor))
            squashed = torch.tanh(actor.mu(latent))  # mu ends in a Hardtanh with gSDE
            return self.low + 0.5 * (squashed + 1.0) * (self.high - self.low)  # unscale_action

    space = policy.model.action_space
    module = OnnxableSB3Policy(
        policy.model.policy, policy.normalizer, algorithm_name(policy.model), space.low, space.high,
        policy.residual_base, policy.channels,
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
        ValueError: corrupt/incompatible checkpoint, or a recurrent policy.
    """
    import onnx
    import torch

    checkpoint = resolve_checkpoint(run_dir)
    meta = read_meta(checkpoint)
    if meta.get("algorithm") == "recurrent_ppo":
        raise ValueError(
            f"Checkpoint {checkpoint} holds a recurrent PPO policy, which cannot be exported to "
            "ONNX (its LSTM state is not a graph input); evaluate the run directory instead."
        )
    policy = load_run_policy(run_dir)
    module = _module(policy)
    out_path = Path(out) if out is not None else default_export_path(run_dir)
    if out_path.suffix != ".onnx":
        raise ValueError(f"The output file must end in .onnx, got {out_path}.")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(2, policy.channels.obs_dim, dtype=torch.float32),)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), _quiet_torch_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"obs": {0: batch}},
            dynamo=True,
            verbose=False,
        )
        program.save(str(out_path))
    onnx.checker.check_model(str(out_path))
    write_json(out_path.with_suffix(".json"), sidecar(run_dir, checkpoint, meta))
    return out_path


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


def sidecar(run_dir: str | Path, checkpoint: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata written next to the ONNX file."""
    channels = recorded_channels(meta, checkpoint)
    obs_dim, action_dim = channels.obs_dim, channels.action_dim
    config_path = RunPaths(Path(default_export_path(run_dir)).parent.parent).config
    scenario: Any = None
    if config_path.is_file():
        import yaml

        scenario = (yaml.safe_load(config_path.read_text()) or {}).get("env", {}).get("scenario")
    return {
        "format": ONNX_FORMAT,
        "input": {"name": INPUT_NAME, "shape": ["batch", obs_dim], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", action_dim], "dtype": "float32"},
        "observation_space": {"low": "-inf", "high": "inf", "shape": [obs_dim]},
        "action_space": {"low": -1.0, "high": 1.0, "shape": [action_dim]},
        "observation_features": list(channels.layout.features),
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "channels": channels.records(),
        "env_signature": env_signature(channels),
        "scenario": scenario,
        "algorithm": meta.get("algorithm"),
        "residual_base": meta.get("residual_base", "none"),
        "num_timesteps": meta.get("num_timesteps"),
        "source_checkpoint": str(checkpoint),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(channels),
    }


class OnnxPolicy:
    """An exported ONNX policy behind the ``Policy`` interface (onnxruntime, CPU, 1 thread).

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
        if len(inputs) != 1 or len(outputs) < 1:
            raise ValueError(f"{self.path} must have one observation input and an action output.")
        self.input_name = inputs[0].name
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
        """Stateless; refuses ``campaigns`` on another channel list than the policy's."""
        if campaigns is not None:
            channels_of(campaigns).require_same(self.channels, f"ONNX policy {self.path}")

    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Deterministic actions ``(n, k + 1)`` for raw observations ``(n, obs_dim)``."""
        arr = check_obs(obs, self.channels)
        (actions,) = self.session.run(None, {self.input_name: np.ascontiguousarray(arr)})[:1]
        return actions, None
