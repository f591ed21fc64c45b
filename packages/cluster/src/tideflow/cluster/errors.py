"""The error hierarchy of ``tideflow.cluster``; every class derives from
:class:`tideflow.core.errors.TideflowError` (configuration errors from its ``ConfigError``)."""

from __future__ import annotations

from tideflow.core.errors import ConfigError, TideflowError

__all__ = [
    "ClusterConfigError",
    "ClusterError",
    "DemandError",
    "KubeConflictError",
    "KubeError",
    "PatchSafetyError",
]


class ClusterError(TideflowError):
    """Base class of the errors ``tideflow.cluster`` raises on purpose."""


class ClusterConfigError(ClusterError, ConfigError):
    """The cluster configuration is invalid; the message names the field, what is allowed and
    what was seen."""


class KubeError(ClusterError):
    """A Kubernetes API call failed. ``status`` is the HTTP status (0 when no answer came).

    The message never carries the bearer token: the client masks it before raising.
    """

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_kube_error, (type(self), str(self), self.status, self.reason))


def _rebuild_kube_error(cls: type[KubeError], message: str, status: int, reason: str) -> KubeError:
    return cls(message, status=status, reason=reason)


class KubeConflictError(KubeError):
    """The object changed since it was read (HTTP 409, or 422 from a failed ``test`` op of a
    JSON patch). Read it again and decide again."""


class PatchSafetyError(ClusterError):
    """A patch the autoscaler built would break a rule it must keep (an invalid JSON patch, a
    pod of another group named in ``workersToDelete``, an unknown group); nothing was sent."""


class DemandError(ClusterError):
    """The resource demand could not be read (Ray's GCS unreachable, a malformed demand file)."""
