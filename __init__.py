"""budgetgym: reinforcement learning for multi-channel advertising budget allocation.

Importing the package registers the Gymnasium environment ``budgetgym/MultiChannelBudget-v1``.
"""

from budgetgym.envs import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["__version__"]
