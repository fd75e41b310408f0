"""Loading a run never executes code from it (issue 23, item 2).

A pickle whose ``__reduce__`` writes a marker file is planted in every file of a trained run
directory and in every member of its zip archives (``model.zip``, the ``.npz`` arrays), one
at a time and all at once, next to the files as an old run's ``vecnormalize.pkl`` and
``replay_buffer.pkl``. ``evaluate``, ``compare``, ``export`` and ``train --resume`` then either
work (the planted file is not one they read) or stop with a one-line error; the marker is never
written.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from budgetgym.agents.checkpoints import (
    LEGACY_VECNORM_FILE,
    MODEL_FILE,
    REPLAY_FILE,
    VECNORM_FILE,
    RunPaths,
    load_checkpoint,
    load_run_policy,
    read_meta,
)
from budgetgym.agents.config import validate_config
from budgetgym.agents.training import make_train_env, resume, train
from budgetgym.envs import OBS_DIM
from budgetgym.scripts import convert_run
from budgetgym.scripts.cli import main
from tests.agents.tiny_runs import TINY, quiet

# PPO's run also caches the validation references (validation_references.json).
PPO = {**TINY, "eval": {**TINY["eval"], "references": True}}
SAC = {
    **TINY,
    "algorithm": "sac",
    "hyperparams": {"buffer_size": 2000, "learning_starts": 24, "batch_size": 32,
                    "gradient_steps": 1, "policy_kwargs": {"net_arch": [16, 16]}},
}  # fmt: skip
RECURRENT = {
    **TINY,
    "algorithm": "recurrent_ppo",
    "hyperparams": {"n_steps": 24, "batch_size": 48, "n_epochs": 1,
                    "policy_kwargs": {"lstm_hidden_size": 16}},
}  # fmt: skip


class Payload:
    """Unpickling this runs ``exec`` of code that writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


def npy_payload(marker: Path) -> bytes:
    """An ``.npy`` member holding an object array, i.e. the planted pickle."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def same(a: object, b: object) -> bool:
    """Nested state dicts equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Trained PPO, SAC (with replay buffers) and recurrent PPO runs (checkpoints/, best/,
    final/)."""
    root = tmp_path_factory.mktemp("runs")
    configs = {"ppo": PPO, "sac": SAC, "recurrent_ppo": RECURRENT}
    for name, data in configs.items():
        train(validate_config(data), root / name, progress=False, log=quiet, torch_threads=1)
    return {name: root / name for name in configs}


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def targets(run: Path) -> list[tuple[str, str | None]]:
    """Every file of ``run`` (relative path, None) and every member of its zip archives
    (relative path, member name)."""
    found: list[tuple[str, str | None]] = []
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        relative = str(path.relative_to(run))
        found.append((relative, None))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [(relative, member) for member in archive.namelist()]
    return found


def plant(run: Path, relative: str, member: str | None, marker: Path) -> None:
    """Replace a file of ``run``, or one member of a zip archive, with the planted pickle."""
    path = run / relative
    if member is None:
        path.write_bytes(payload(marker))
        return
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents[member] = npy_payload(marker) if member.endswith(".npy") else payload(marker)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def plant_old_pickles(run: Path, marker: Path) -> list[Path]:
    """An old run's pickles beside each checkpoint's data files, and the pickle as SB3's
    ``data`` entry of each ``model.zip``; returns the checkpoint directories."""
    checkpoints = sorted(p.parent for p in run.rglob("meta.json"))
    for checkpoint in checkpoints:
        (checkpoint / LEGACY_VECNORM_FILE).write_bytes(payload(marker))
        (checkpoint / "replay_buffer.pkl").write_bytes(payload(marker))
        plant(run, str((checkpoint / MODEL_FILE).relative_to(run)), "data", marker)
    return checkpoints


def attempt(action: Callable[[], object]) -> str:
    """Run ``action``: ``"ok"``, or the message of the clear error it raised."""
    try:
        action()
    except (ValueError, FileNotFoundError) as err:
        message = str(err)
        assert message and "\n" not in message, repr(message)
        return message
    return "ok"


def test_the_planted_pickle_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The payload is live: the loaders below are what keeps it from running."""
    marker = tmp_path / "marker"
    pickle.loads(payload(marker))
    assert marker.read_text() == "code ran"
    marker.unlink()
    np.load(io.BytesIO(npy_payload(marker)), allow_pickle=True)
    assert marker.exists()


def test_runs_are_stored_as_data_not_pickles(runs: dict[str, Path]) -> None:
    for run in runs.values():
        for checkpoint in sorted(p.parent for p in run.rglob("meta.json")):
            names = {p.name for p in checkpoint.iterdir()}
            assert {MODEL_FILE, VECNORM_FILE, "meta.json"} <= names
            assert not any(name.endswith(".pkl") for name in names)
            stats = np.load(checkpoint / VECNORM_FILE, allow_pickle=False)
            assert stats["obs_mean"].shape == (OBS_DIM,)
    periodic = RunPaths(runs["sac"]).list_checkpoints()
    assert all((p / REPLAY_FILE).is_file() for p in periodic)
    with np.load(periodic[-1] / REPLAY_FILE, allow_pickle=False) as replay:
        assert replay["observations"].shape[1:] == (4, OBS_DIM) and len(replay["observations"])


@pytest.mark.parametrize("algorithm", ["ppo", "sac", "recurrent_ppo"])
def test_a_loaded_checkpoint_holds_the_saved_weights_counters_and_statistics(
    runs: dict[str, Path], algorithm: str
) -> None:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO, SAC

    run = RunPaths(runs[algorithm])
    checkpoint = run.list_checkpoints()[-1]
    loaded = load_checkpoint(checkpoint)
    # Reference: SB3's own loader (it unpickles; this run is our own, so trusted here).
    algorithm_class = {"ppo": PPO, "sac": SAC, "recurrent_ppo": RecurrentPPO}[algorithm]
    reference = algorithm_class.load(checkpoint / MODEL_FILE, device="cpu")
    # Weights and optimizer states, tensor for tensor.
    assert same(loaded.model.get_parameters(), reference.get_parameters())
    assert (
        loaded.model.num_timesteps
        == reference.num_timesteps
        == read_meta(checkpoint)["num_timesteps"]
    )
    assert loaded.model._n_updates == reference._n_updates > 0
    assert loaded.normalization.obs_count > 96
    if algorithm == "sac":
        assert torch.equal(loaded.model.log_ent_coef, reference.log_ent_coef)
        # Resuming restores the replay buffer, row for row.
        config = validate_config(yaml.safe_load((run.config).read_text()))
        env = make_train_env(config, seed=0)
        buffer = load_checkpoint(checkpoint, env=env).model.replay_buffer
        with np.load(checkpoint / REPLAY_FILE, allow_pickle=False) as saved:
            assert buffer.pos == int(saved["pos"]) > 0
            np.testing.assert_array_equal(buffer.observations[: buffer.pos], saved["observations"])
            np.testing.assert_array_equal(buffer.rewards[: buffer.pos], saved["rewards"])


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_a_pickle_in_any_file_or_archive_member_never_runs(
    runs: dict[str, Path], algorithm: str, tmp_path: Path
) -> None:
    """One planted file at a time; loading a policy and resuming either work or fail clearly."""
    marker = tmp_path / "marker"
    source = runs[algorithm]
    final_step = read_meta(source / "final")["num_timesteps"]
    outcomes: dict[tuple[str, str | None], tuple[str, str]] = {}
    for relative, member in targets(source):
        run = copy_run(source, tmp_path / f"case{len(outcomes)}")
        plant(run, relative, member, marker)
        loaded = attempt(lambda run=run: load_run_policy(run))
        resumed = attempt(
            lambda run=run: resume(
                run, final_step + 96, progress=False, final_comparison=False, log=quiet
            )
        )
        assert not marker.exists(), f"code ran from {relative} {member or ''}"
        outcomes[relative, member] = (loaded, resumed)
        shutil.rmtree(run)
    # The run's policy comes from best/: every file and tensor or array member the loader reads
    # there is refused as corrupt, not skipped; SB3's other members are not read.
    for (relative, member), (loaded, _) in outcomes.items():
        if relative.startswith("best/"):
            read = member is None or member.endswith((".pth", ".npy"))
            assert ("corrupt" in loaded) if read else loaded == "ok", (relative, member, loaded)
    # SB3's pickled fields are not read: planted in data, the model still loads and resumes.
    assert outcomes[f"best/{MODEL_FILE}", "data"] == ("ok", "ok")
    assert outcomes[f"final/{MODEL_FILE}", "data"] == ("ok", "ok")


def test_resume_skips_a_checkpoint_whose_replay_buffer_holds_a_pickle(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    run = copy_run(runs["sac"], tmp_path)
    shutil.rmtree(run / "final")  # killed before the end: the newest state is periodic
    newest = RunPaths(run).list_checkpoints()[-1]
    plant(run, str((newest / REPLAY_FILE).relative_to(run)), "observations.npy", marker)
    messages: list[str] = []
    result = resume(run, 288, progress=False, final_comparison=False, log=messages.append)
    assert not marker.exists()
    assert result.num_timesteps >= 288
    skipped = [m for m in messages if newest.name in m and "Replay buffer" in m]
    assert skipped and "pickled objects" in skipped[0], messages


def loading_commands(run: Path, out: Path, *campaign_args: str) -> list[list[str]]:
    """The commands that load ``run``: evaluate, compare, export and train --resume."""
    campaigns = ["--episodes", "2", "--horizon-hours", "24", *campaign_args, "--no-progress"]
    return [
        ["evaluate", "--policy", str(run), "--scenario", "hit_product", "--out",
         str(out / "evaluate"), *campaigns],
        ["compare", "--scenarios", "hit_product", "--policy", str(run), "--out",
         str(out / "compare"), *campaigns],
        ["export", str(run), "--out", str(out / "policy.onnx")],
        ["train", "--resume", str(run), "--total-timesteps", "288", "--no-progress"],
    ]  # fmt: skip


def test_old_pickles_beside_the_data_are_never_read_by_the_commands(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    run = copy_run(runs["ppo"], tmp_path)
    plant_old_pickles(run, marker)
    for command in loading_commands(run, tmp_path, "--batch-size", "2"):
        assert main(command) == 0, capsys.readouterr().out
        assert not marker.exists(), f"code ran under {command[0]}"
    assert read_meta(run / "final")["num_timesteps"] >= 288


def test_a_run_made_of_pickles_fails_every_command_with_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    run = copy_run(runs["ppo"], tmp_path)
    plant_old_pickles(run, marker)
    for relative, member in targets(run):  # members first, then the files holding them
        if member is not None:
            plant(run, relative, member, marker)
    for relative, member in targets(run):
        if member is None:
            plant(run, relative, None, marker)
    for command in loading_commands(run, tmp_path):
        capsys.readouterr()
        assert main(command) == 2, command
        out = capsys.readouterr().out.strip()
        assert out.startswith("error:") and "Traceback" not in out, out
        assert not marker.exists(), f"code ran under {command[0]}"


def test_an_old_run_with_pickled_statistics_is_refused_with_the_reason(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    run = copy_run(runs["ppo"], tmp_path)
    for checkpoint in sorted(p.parent for p in run.rglob("meta.json")):
        (checkpoint / VECNORM_FILE).unlink()
        (checkpoint / LEGACY_VECNORM_FILE).write_bytes(payload(marker))
    with pytest.raises(ValueError, match=r"as a pickle \(vecnormalize.pkl.*can run code"):
        load_run_policy(run)
    with pytest.raises(ValueError, match="as a pickle"):
        resume(run, 288, progress=False, final_comparison=False, log=quiet)
    assert not marker.exists()


@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_a_trusted_old_run_converts_to_data_files_only_when_asked(
    runs: dict[str, Path], algorithm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(runs[algorithm], tmp_path)
    config = validate_config(yaml.safe_load((run / "config.yaml").read_text()))
    checkpoints = sorted(p.parent for p in run.rglob("meta.json"))
    saved = {}
    for checkpoint in checkpoints:  # the files an older budgetgym wrote
        loaded = load_checkpoint(checkpoint, env=make_train_env(config, seed=0))
        (checkpoint / LEGACY_VECNORM_FILE).write_bytes(pickle.dumps(loaded.vecnormalize))
        if (checkpoint / REPLAY_FILE).is_file():
            buffer = pickle.dumps(loaded.model.replay_buffer)
            (checkpoint / REPLAY_FILE).unlink()
            (checkpoint / "replay_buffer.pkl").write_bytes(buffer)
        saved[checkpoint] = loaded.normalization
        (checkpoint / VECNORM_FILE).unlink()
    with pytest.raises(ValueError, match="convert_run .* --trust-pickles"):
        load_run_policy(run)

    assert convert_run.main([str(run)]) == 2
    assert "--trust-pickles" in capsys.readouterr().out
    assert all((c / LEGACY_VECNORM_FILE).is_file() for c in checkpoints)
    assert convert_run.main([str(run), "--trust-pickles"]) == 0
    for checkpoint in checkpoints:
        assert not list(checkpoint.glob("*.pkl"))
        converted = load_checkpoint(checkpoint).normalization
        for field in dataclasses.fields(converted):
            expected = getattr(saved[checkpoint], field.name)
            np.testing.assert_array_equal(getattr(converted, field.name), expected)
    load_run_policy(run)
    final_step = read_meta(run / "final")["num_timesteps"]
    resume(run, final_step + 96, progress=False, final_comparison=False, log=quiet)
    assert read_meta(run / "final")["num_timesteps"] >= final_step + 96


def test_a_checkpoint_outside_its_run_or_for_another_model_is_refused(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    lone = Path(shutil.copytree(runs["ppo"] / "best", tmp_path / "lone" / "best"))
    with pytest.raises(ValueError, match="not inside a run directory"):
        load_run_policy(lone)
    run = copy_run(runs["ppo"], tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["hyperparams"]["policy_kwargs"] = {"net_arch": [8]}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="does not fit the ppo model its run's config describes"):
        load_run_policy(run)
