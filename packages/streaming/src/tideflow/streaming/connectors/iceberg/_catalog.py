"""Iceberg catalogs from configuration, and the table description both connectors share."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.streaming.connectors._deps import check_installed, require
from tideflow.streaming.connectors._kit import describe_error
from tideflow.streaming.errors import ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

__all__ = ["IcebergTable", "default_warehouse", "load_catalog"]

_TYPES = ("sql", "rest", "hive", "glue", "dynamodb", "in-memory")
_NEEDS_URI = ("rest", "hive")
_SECRET_WORDS = ("secret", "key", "token", "credential", "password")


# -- catalogs -------------------------------------------------------------------------------


def default_warehouse() -> Path:
    """Where the embedded catalog keeps tables when no ``warehouse`` is given."""
    return Path.home() / ".tideflow" / "warehouse"


def load_catalog(name: str = "tideflow", **properties: Any) -> Catalog:
    """A pyiceberg catalog from its properties; with none, the embedded SQLite catalog.

    ``type`` is one of ``sql`` (default), ``rest``, ``hive``, ``glue``, ``dynamodb``,
    ``in-memory``; without it, ``uri`` decides (``http(s)://`` → rest, ``thrift://`` → hive,
    others → sql). For ``sql``, ``warehouse`` defaults to ``~/.tideflow/warehouse`` (a local
    path becomes a ``file://`` URI and is created) and ``uri`` to
    ``sqlite:///<warehouse>/catalog.db``. Other properties go to pyiceberg unchanged
    (``s3.endpoint``, ``s3.access-key-id``, ``credential``, …); unlike
    ``pyiceberg.catalog.load_catalog``, nothing is read from the environment or
    ``~/.pyiceberg.yaml``. Errors are :class:`ConfigError` naming the catalog, never
    showing secrets; without pyiceberg, :class:`~tideflow.core.errors.MissingDependencyError`
    (``pip install "tideflow-streaming[iceberg]"``).
    """
    require("pyiceberg.catalog")  # without pyiceberg: the error that names the extra
    from pyiceberg.catalog import AVAILABLE_CATALOGS, CatalogType

    props = {str(k): str(v) for k, v in properties.items() if v is not None}
    kind = props.pop("type", None) or _infer_type(props.get("uri"))
    where = f"catalog {name!r} (type {kind!r})"
    if kind not in _TYPES:
        raise ConfigError(f"{where}: unknown type; expected one of {list(_TYPES)}")
    if kind in _NEEDS_URI and not props.get("uri"):
        raise ConfigError(f"{where} needs uri= (the catalog server's address)")
    if kind == "sql":
        _sql_defaults(where, props)
    problem = None
    for attempt in range(5):
        try:
            return AVAILABLE_CATALOGS[CatalogType(kind)](name, props)
        except Exception as e:  # drivers raise anything: OperationalError, ConnectionError, …
            problem = describe_error(e)
            # Two processes opening a new SQL catalog at once race to create its tables;
            # the loser sees "already exists" and succeeds on a second look.
            if "already exists" not in str(e) or attempt == 4:
                break
            time.sleep(0.05 * (attempt + 1))
    uri = redact(props.get("uri", ""))
    raise ConfigError(f"{where} at {uri!r} cannot be opened: {problem}")


def _infer_type(uri: str | None) -> str:
    if not uri:
        return "sql"
    if uri.startswith(("http://", "https://")):
        return "rest"
    if uri.startswith("thrift://"):
        return "hive"
    return "sql"


def _sql_defaults(where: str, props: dict[str, str]) -> None:
    warehouse = props.get("warehouse") or str(default_warehouse())
    local = None
    if "://" not in warehouse or warehouse.startswith("file://"):
        local = os.path.abspath(warehouse.removeprefix("file://"))
        os.makedirs(local, exist_ok=True)
        warehouse = Path(local).as_uri()
    props["warehouse"] = warehouse
    if not props.get("uri"):
        if local is None:
            message = (
                f"{where}: a SQL catalog over the remote warehouse {redact(warehouse)!r} needs "
                "uri= (e.g. sqlite:////path/catalog.db or postgresql+psycopg2://…)"
            )
            raise ConfigError(message)
        props["uri"] = f"sqlite:///{local}/catalog.db"


def _describe(catalog: Mapping[str, Any]) -> str:
    """The catalog's properties for a repr: secrets masked, URIs redacted."""
    shown = []
    for k, v in sorted(catalog.items()):
        secret = any(word in k.lower() for word in _SECRET_WORDS) and "endpoint" not in k
        shown.append(f"{k}={'***' if secret else redact(str(v))}")
    return "{" + ", ".join(shown) + "}"


@dataclass(frozen=True, repr=False)
class IcebergTable:
    """What both connectors name: a table in a catalog."""

    table: str
    """The table identifier, ``"namespace.table"`` (nested namespaces: ``"a.b.table"``)."""
    _: KW_ONLY
    catalog: Mapping[str, Any] = field(default_factory=dict)
    """The catalog's properties (see :func:`load_catalog`); empty: the embedded catalog."""
    catalog_name: str = "tideflow"
    """The catalog's name (SQL catalogs keep tables of several catalogs apart by it)."""

    def __post_init__(self) -> None:
        check_installed("pyiceberg")
        owner = type(self).__name__
        if not isinstance(self.table, str) or "." not in self.table.strip("."):
            message = f'{owner}.table must be "namespace.table"; got {self.table!r}'
            raise ConfigError(message)
        if not isinstance(self.catalog, Mapping):
            raise ConfigError(f"{owner}.catalog must be a dict of properties; got {self.catalog!r}")
        object.__setattr__(self, "catalog", dict(self.catalog))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.table!r}, catalog={_describe(self.catalog)})"

    def _catalog(self) -> Catalog:
        return load_catalog(self.catalog_name, **self.catalog)

    def _catalog_for(self, error: type[Exception]) -> Catalog:
        """The catalog; a :class:`ConfigError` opening it becomes ``error`` naming this."""
        problem = None
        try:
            return self._catalog()
        except ConfigError as e:
            problem = str(e)
        raise error(f"{self!r}: {problem}")

    def _load(self, catalog: Catalog, error: type[Exception]) -> Table | None:
        """The table, or None when it does not exist."""
        from pyiceberg.exceptions import NoSuchTableError

        problem = None
        try:
            return catalog.load_table(self.table)
        except NoSuchTableError:
            return None
        except Exception as e:
            problem = describe_error(e)
        raise error(f"{self!r}: cannot load the table: {problem}")

    def _log(self) -> Any:
        return get_logger("tideflow.streaming.iceberg", table=self.table)
