"""Which Ray nodes the job's actors run on, and which nodes are being drained.

A node is drained before it goes away (a preempted spot or "tidal" node, a scale-down):
Ray's GCS then lists it with a deadline, places nothing new on it, and the node dies at the
deadline. The attempt looks four times a second (one GCS call). Stateless stages move off
such a node at once (their pool retires its actors there, see ``ActorPool.retire_nodes``);
if the I/O actor, a sink writer or a keyed partition is on it, the attempt stops reading,
commits what it read, and the run goes on from that checkpoint with new actors elsewhere
(a move, counted in ``JobResult.restarts``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["NodeWatch", "draining_nodes", "nodes_of"]


def draining_nodes() -> set[str]:
    """Hex ids of the nodes being drained now (empty when Ray cannot say)."""
    try:
        from ray._private.state import state  # Ray 2.60: GlobalState.get_draining_nodes

        return set(state.get_draining_nodes())
    except Exception:  # an older Ray, or the GCS is unreachable this once: look again later
        return set()


def _node_of(_actor: object) -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def nodes_of(actors: Sequence[Any]) -> list[str]:
    """The node each of ``actors`` runs on (they must have started)."""
    import ray

    return list(ray.get([a.__ray_call__.remote(_node_of) for a in actors]))


class NodeWatch:
    """Reports nodes that began draining since the last look, at most every ``every_s``."""

    def __init__(
        self, *, every_s: float = 0.25, draining: Callable[[], set[str]] = draining_nodes
    ) -> None:
        self.every_s = every_s
        self._draining = draining
        self._next = 0.0
        self.seen: set[str] = set()

    def poll(self, now: float) -> set[str]:
        """The nodes that began draining since the last poll (empty between looks)."""
        if now < self._next:
            return set()
        self._next = now + self.every_s
        fresh = self._draining() - self.seen
        self.seen |= fresh
        return fresh
