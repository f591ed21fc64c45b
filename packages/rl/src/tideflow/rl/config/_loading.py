"""An :class:`RLConfig` from YAML or nested mappings, and back to plain dicts.

Unknown fields and wrong types are rejected with the field's dotted path, what was expected
and what was seen; each dataclass's ``__post_init__`` checks the values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from tideflow.rl.config._run import RLConfig
from tideflow.rl.errors import ConfigError


def load_config(source: str | Path | Mapping[str, Any]) -> RLConfig:
    """An :class:`RLConfig` from a YAML file (path) or a mapping of the same shape."""
    if isinstance(source, Mapping):
        return config_from_dict(source)
    import yaml

    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the config file {str(path)!r}: {error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top; got {document!r}")
    return config_from_dict(document)


def config_from_dict(data: Mapping[str, Any]) -> RLConfig:
    """An :class:`RLConfig` from nested mappings; errors name the field's dotted path."""
    value = _build(RLConfig, data, "")
    assert isinstance(value, RLConfig)
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as plain nested dicts (JSON/YAML-able), the inverse of :func:`config_from_dict`."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif isinstance(value, Mapping):
            out[f.name] = dict(value)
        else:
            out[f.name] = value
    return out


def _build(cls: type, data: Any, where: str) -> Any:
    name = cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or name} must be a mapping of {name} fields; got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        message = f"{where or name}: unknown field(s) {unknown}; {name} has {sorted(fields)}"
        raise ConfigError(message)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        kwargs[key] = _coerce(hints[key], value, path)
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        missing = [
            f.name
            for f in fields.values()
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        message = f"{where or name}: missing required field(s) {missing} ({error})"
        raise ConfigError(message) from error
    except ConfigError as error:
        raise ConfigError(f"{where or name}: {error}") from error


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {' / '.join(errors)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path} must be one of {list(args)}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{path} must be a list of {len(args)} values; got {value!r}")
        return tuple(
            _coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is Mapping or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping; got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false; got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer; got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number; got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string; got {value!r}")
        return value
    return value
