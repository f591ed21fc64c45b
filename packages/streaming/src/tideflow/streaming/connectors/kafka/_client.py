"""What the Kafka source and sink share: aiokafka on a private event loop, connection
options (with secrets kept out of text), and the driver's cached clients.

aiokafka is asyncio; the engine calls connectors synchronously from Ray actors and from
the driver. Each process runs one private event loop in a daemon thread
(:func:`run_async`); blocking calls submit a coroutine to it and wait with a timeout.
Clients live on that loop for as long as their reader, or (driver side) in a small cache
that is dropped when a call fails, so that the next call reconnects.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from tideflow.core.observability import get_logger
from tideflow.streaming.connectors._deps import install_hint, require
from tideflow.streaming.errors import ConfigError

__all__ = [
    "INSTALL_HINT",
    "ClientCache",
    "Endpoint",
    "cache_key",
    "check_seconds",
    "client_kwargs",
    "close_later",
    "close_quietly",
    "describe_options",
    "driver_call",
    "error_text",
    "import_aiokafka",
    "normalize_endpoint",
    "normalize_options",
    "normalize_servers",
    "redact_options",
    "redact_text",
    "run_async",
    "safe_name",
    "same_endpoint",
    "start_client",
    "start_for",
]

INSTALL_HINT = install_hint("kafka")
_SECRET_WORDS = ("password", "secret", "token", "credential")
_SSL_FILE_OPTIONS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_capath")
_T = TypeVar("_T")


def import_aiokafka() -> Any:
    """The ``aiokafka`` module (``admin`` and ``helpers`` imported too), or
    :class:`~tideflow.core.errors.MissingDependencyError` with the install hint."""
    aiokafka = require("aiokafka")
    require("aiokafka.admin")
    require("aiokafka.helpers")
    return aiokafka


# -- options and secrets ---------------------------------------------------------------------


def normalize_servers(owner: str, servers: object) -> str:
    """``bootstrap_servers`` as aiokafka's comma-separated text; :class:`ConfigError` if bad."""
    items: Any = [servers] if isinstance(servers, str) else servers
    ok = isinstance(items, Sequence) and all(isinstance(s, str) and s.strip() for s in items)
    if not ok or not items:
        message = (
            f"{owner}.bootstrap_servers must be 'host:port', a comma-separated list of them, "
            f"or a list of them; got {servers!r}"
        )
        raise ConfigError(message)
    return ",".join(s.strip() for s in items)


def normalize_options(owner: str, options: object) -> dict[str, Any]:
    """``client_options`` as a plain dict of aiokafka keyword arguments."""
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        message = (
            f"{owner}.client_options must be a dict of aiokafka keyword arguments "
            f"(security_protocol, sasl_mechanism, sasl_plain_username, …); got {type(options)}"
        )
        raise ConfigError(message)
    if "ssl_context" in options:
        message = (
            f"{owner}.client_options: pass ssl_cafile / ssl_certfile / ssl_keyfile / "
            "ssl_password instead of ssl_context (an SSLContext cannot be sent to the "
            "engine's actors); the context is built where the client runs"
        )
        raise ConfigError(message)
    for key in ("bootstrap_servers", "group_id", "transactional_id", "enable_auto_commit"):
        if key in options:
            message = f"{owner}.client_options cannot set {key!r}: it is a field of {owner}"
            raise ConfigError(message)
    return dict(options)


def is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with secret values (passwords, tokens) shown as ``'***'``."""
    return {k: ("***" if is_secret(k) and v is not None else v) for k, v in options.items()}


def redact_text(text: str, options: Mapping[str, Any]) -> str:
    """``text`` with every secret value of ``options`` masked (errors may echo them)."""
    for key, value in options.items():
        if is_secret(key) and isinstance(value, str) and value:
            text = text.replace(value, "***")
    return text


class Endpoint(Protocol):
    """What a Kafka connector says about where and how it connects."""

    @property
    def bootstrap_servers(self) -> Any: ...

    @property
    def client_options(self) -> Mapping[str, Any]: ...

    @property
    def request_timeout_s(self) -> float: ...


def normalize_endpoint(owner: str, connector: Endpoint) -> None:
    """Set a (frozen) connector's ``bootstrap_servers`` and ``client_options`` to their
    checked, normal forms; :class:`ConfigError` naming ``owner`` when they are not valid."""
    servers = normalize_servers(owner, connector.bootstrap_servers)
    object.__setattr__(connector, "bootstrap_servers", servers)
    object.__setattr__(
        connector, "client_options", normalize_options(owner, connector.client_options)
    )


def check_seconds(owner: str, connector: object, *names: str) -> None:
    """:class:`ConfigError` unless each attribute ``names`` of ``connector`` is a number > 0."""
    for name in names:
        value = getattr(connector, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{owner}.{name} must be a number > 0; got {value!r}")


def describe_options(options: Mapping[str, Any]) -> str:
    """``", client_options={...}"`` with secrets masked, for a repr ('' without options)."""
    return f", client_options={redact_options(options)!r}" if options else ""


def error_text(error: BaseException, options: Mapping[str, Any]) -> str:
    """``"<type>: <message>"`` with the secret values of ``options`` masked; ≤ 300 chars."""
    return f"{type(error).__name__}: {redact_text(str(error), options)}"[:300]


def cache_key(kind: str, connector: Endpoint, *parts: Any) -> tuple[Any, ...]:
    """The :class:`ClientCache` key of a ``kind`` of client of ``connector``: one client per
    kind, servers, ``parts`` (a group, a transactional id) and options."""
    options = json.dumps(connector.client_options, sort_keys=True, default=repr)
    return (kind, connector.bootstrap_servers, *parts, options)


def same_endpoint(key: tuple[Any, ...], connector: Endpoint) -> bool:
    """Whether the :func:`cache_key` ``key`` is of a client of ``connector``'s servers and
    options (whatever its kind and parts)."""
    mine = cache_key("", connector)
    return len(key) >= 3 and key[1] == mine[1] and key[-1] == mine[-1]


def driver_call(
    cache: ClientCache,
    connector: Endpoint,
    key: Any,
    make: Callable[[], Awaitable[Any]],
    use: Callable[[Any], Awaitable[Any]],
    *,
    what: str,
    error: type[Exception],
) -> Any:
    """``cache.call`` within the connector's ``request_timeout_s``; a failure becomes
    ``error`` naming the connector, what it did and the servers, without secrets."""
    timeout = connector.request_timeout_s
    problem = None
    try:
        return cache.call(key, make, use, timeout)
    except TimeoutError:
        problem = f"no answer within {timeout} s"
    except Exception as e:
        problem = f"{type(e).__name__}: {redact_text(str(e), connector.client_options)}"
    raise error(f"{connector!r}: cannot {what} at {connector.bootstrap_servers}: {problem}")


def safe_name(text: str) -> str:
    """``text`` as a file name: characters other than letters, digits, ``-_.`` as ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120]


def client_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """aiokafka keyword arguments: the SSL file options become an ``ssl_context``."""
    kwargs = {k: v for k, v in options.items() if k not in _SSL_FILE_OPTIONS}
    files = {k: options[k] for k in _SSL_FILE_OPTIONS if options.get(k) is not None}
    if files:
        helpers = import_aiokafka().helpers
        kwargs["ssl_context"] = helpers.create_ssl_context(
            cafile=files.get("ssl_cafile"),
            capath=files.get("ssl_capath"),
            certfile=files.get("ssl_certfile"),
            keyfile=files.get("ssl_keyfile"),
            password=files.get("ssl_password"),
        )
        kwargs.setdefault("security_protocol", "SSL")
    return kwargs


# -- the private event loop ------------------------------------------------------------------


class _Loop:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="tideflow-kafka-loop", daemon=True
        )
        self.thread.start()


_LOOPS: dict[int, _Loop] = {}
_loop_lock = threading.Lock()


def _the_loop() -> asyncio.AbstractEventLoop:
    with _loop_lock:
        current = _LOOPS.get(os.getpid())  # none yet, or one inherited by a fork
        if current is None:
            _LOOPS.clear()
            current = _LOOPS[os.getpid()] = _Loop()
        return current.loop


def run_async(coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
    """Run ``coro`` on this process's Kafka event loop; block up to ``timeout`` seconds.

    On timeout the coroutine is cancelled and :class:`TimeoutError` is raised.
    """
    future = asyncio.run_coroutine_threadsafe(coro, _the_loop())
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


async def close_quietly(client: Any) -> None:
    """Stop an aiokafka client, ignoring errors (it may never have connected)."""
    stop = getattr(client, "stop", None) or client.close
    try:
        await asyncio.wait_for(stop(), 10)
    except Exception as error:
        get_logger("tideflow.streaming.kafka").debug("kafka.close_failed", error=str(error)[:200])


async def start_client(
    client_cls: Any,
    servers: str,
    options: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> Any:
    """A started aiokafka client: ``defaults``, then the user's ``options``, then ``fixed``.

    A client whose start fails is closed (aiokafka warns about unclosed clients).
    """
    kwargs = {**(defaults or {}), **client_kwargs(options), **fixed}
    if client_cls.__name__ == "AIOKafkaConsumer":
        kwargs["enable_auto_commit"] = False
    client = client_cls(bootstrap_servers=servers, **kwargs)
    try:
        await client.start()
    except BaseException:
        await close_quietly(client)
        raise
    return client


async def start_for(connector: Endpoint, client_cls: Any, **fixed: Any) -> Any:
    """A started aiokafka client of ``connector``'s servers and options, ``fixed`` on top;
    a producer acknowledges with ``acks="all"`` unless the options say otherwise."""
    defaults = {"acks": "all"} if client_cls.__name__ == "AIOKafkaProducer" else None
    servers = str(connector.bootstrap_servers)
    options = connector.client_options
    return await start_client(client_cls, servers, options, defaults=defaults, **fixed)


def close_later(client: Any) -> None:
    """Close ``client`` on the Kafka loop without waiting for it."""
    asyncio.run_coroutine_threadsafe(close_quietly(client), _the_loop())


class ClientCache:
    """Started clients of one process, by key; a client whose call failed is dropped."""

    def __init__(self) -> None:
        self._clients: dict[Any, Any] = {}
        self._lock = threading.Lock()
        atexit.register(self.close_all)

    def close_all(self, timeout: float = 3.0) -> None:
        """Close every cached client (at exit: aiokafka warns about unclosed ones)."""
        self.close_matching(lambda key: True, timeout)

    def close_matching(self, match: Callable[[Any], bool], timeout: float = 3.0) -> None:
        """Close the cached clients whose key ``match`` es, waiting up to ``timeout`` s (a
        stalled broker: the rest closes in the background). Idempotent; a later call for
        such a key starts a new client."""
        with self._lock:  # not while a call uses a client: calls hold the lock
            keys = [key for key in self._clients if match(key)]
            clients = [self._clients.pop(key) for key in keys]
        if clients:
            with contextlib.suppress(Exception):
                run_async(_close_all(clients), timeout)

    def cached_keys(self) -> list[Any]:
        """The keys of the clients cached now."""
        with self._lock:
            return list(self._clients)

    def call(
        self,
        key: Any,
        make: Callable[[], Awaitable[Any]],
        use: Callable[[Any], Awaitable[_T]],
        timeout: float,
    ) -> _T:
        """``await use(client)`` with the cached client for ``key`` (made by ``make``)."""
        with self._lock:  # one call at a time per process: commits are rare and ordered
            client = self._clients.get(key)
            try:
                if client is None:
                    client = run_async(_started(make), timeout)
                    self._clients[key] = client
                return run_async(_awaited(use(client)), timeout)
            except BaseException:
                self._clients.pop(key, None)
                if client is not None:
                    close_later(client)  # not waited for: the broker may be stalled
                raise

    def drop(self, key: Any) -> None:
        with self._lock:
            client = self._clients.pop(key, None)
        if client is not None:
            close_later(client)


async def _close_all(clients: list[Any]) -> None:
    await asyncio.gather(*(close_quietly(c) for c in clients))


async def _started(make: Callable[[], Awaitable[Any]]) -> Any:
    return await make()


async def _awaited(awaitable: Awaitable[_T]) -> _T:
    return await awaitable
