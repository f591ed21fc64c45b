"""A stand-in for a Ray actor handle in operator tests that run without Ray: each method's
``.remote(*args)`` logs the call (``"<index>:<method>:<arg>…"``) and returns what ``reply``
makes of it (named refs the test can recognise)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class Remote:
    """``actor.method`` of a fake actor: ``.remote(...)`` and ``.options(...)``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.remote = fn

    def options(self, **_options: Any) -> Remote:
        return self


class FakeActor:
    """Partition ``index``; its calls are appended to ``calls`` in order."""

    def __init__(
        self,
        index: int,
        calls: list[str],
        methods: Sequence[str],
        reply: Callable[[FakeActor, str, tuple[Any, ...]], Any],
    ) -> None:
        self.index, self.calls, self.counts = index, calls, dict.fromkeys(methods, 0)
        for method in methods:
            setattr(self, method, Remote(self._call(method, reply)))

    def _call(self, method: str, reply: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.counts[method] += 1
            self.calls.append(f"{self.index}:{method}" + "".join(f":{a}" for a in args))
            return reply(self, method, args)

        return call
