"""``algorithm: dagger``: SB3 PPO's model trained by imitation of the planner.

The model is its own class so that checkpoints name it (``meta.json``: ``dagger``) and a run
rebuilds it; the imitation itself lives in :mod:`budgetgym.agents.imitation`, which hands the
model its trainer.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import PPO


class DAgger(PPO):
    """SB3 PPO's model trained by imitation of the planner (``algorithm: dagger``).

    The policy, its checkpoints, evaluation and ONNX export are PPO's; :meth:`learn` runs the
    stages of its ``trainer`` (:class:`~budgetgym.agents.imitation.Imitation`) instead of
    PPO's updates (the critic is not trained). The step counter counts labelled states; after
    each stage the callbacks step once (validation: student against the planner on validation
    campaigns, checkpoints, progress) and the ``imitation/`` scalars are logged.
    """

    #: The :class:`~budgetgym.agents.imitation.Imitation` that ``learn`` runs (set by
    #: :func:`~budgetgym.agents.imitation.attach_imitation`; not saved).
    trainer: Any = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "trainer"]  # it holds the model and the data

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "DAgger",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> DAgger:
        """Behaviour cloning then DAgger (``total_timesteps``: the run's labelled states)."""
        if not reset_num_timesteps and self.num_timesteps > 0:
            raise ValueError(
                "A dagger run does not resume (its dataset is not saved): train it anew."
            )
        if self.trainer is None:
            raise RuntimeError("attach_imitation(model, config) hands DAgger its settings.")
        _, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        for stats in self.trainer.stages():
            self.num_timesteps += stats.states
            for key, value in stats.scalars().items():
                self.logger.record(f"imitation/{key}", value)
            if not callback.on_step():
                break
            self.logger.dump(self.num_timesteps)
        callback.on_training_end()
        return self
