"""Errors of ``tideflow.rl``; all derive from :class:`tideflow.core.errors.TideflowError`."""

from __future__ import annotations

from tideflow.core.errors import ConfigError, TideflowError

__all__ = ["ConfigError", "RLError", "RoleFailedError"]


class RLError(TideflowError):
    """Base of the RL trainer's errors."""


class RoleFailedError(RLError):
    """A role (rollout worker, reward worker, buffer, trainer) died or raised; the run stops.

    The last checkpoint is intact: run the same configuration again to resume from it.
    """
