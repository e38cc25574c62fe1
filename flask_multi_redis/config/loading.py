"""Loading: every source (a Flask config, with its nested section or flat keys; a mapping; a URL; a model)
becomes a config model, and a function that names a key the way the user wrote it."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from flask_multi_redis.errors import ConfigurationError

from .models import (
    FLAT_ALIASES,
    REDIS_KWARGS,
    AnyConfig,
    IRedisMultiConfig,
    IRedisSimpleConfig,
    Label,
)

__all__ = ["load_config"]

log = logging.getLogger(__name__)


def load_config(
    source: object, *, config_element: str, multi: bool, flask_config: bool = False
) -> tuple[AnyConfig, Label]:
    """Build the config model for ``source`` and a function that names a key the way the user wrote it.

    :param source: a Flask ``app.config`` (with ``flask_config=True``), a mapping, a URL, or a config model.
    :param config_element: the section name (``REDIS``), also the prefix of flat keys (``REDIS_HOST``).
    :param multi: build an :class:`IRedisMultiConfig` rather than an :class:`IRedisSimpleConfig`.
    """
    model_cls: type[AnyConfig] = IRedisMultiConfig if multi else IRedisSimpleConfig

    def nested(path: tuple[str, ...]) -> str:
        return ".".join((config_element, *path))

    if isinstance(source, BaseModel):
        if not isinstance(source, model_cls):
            raise ConfigurationError(
                config_element,
                f"a {type(source).__name__} was given to an extension that needs {model_cls.__name__}",
                "FlaskRedisMulti with IRedisMultiConfig, FlaskRedisSingle with IRedisSimpleConfig",
            )
        return source, nested
    label: Label = nested
    if flask_config:
        assert isinstance(source, Mapping)
        section = source.get(config_element)
        if section is None:
            section, label = _flat_keys(source, config_element)
            if not section:
                _warn_missing(source, config_element)
        else:
            _warn_shadowed_flat_keys(source, config_element)
        if isinstance(section, BaseModel):
            return load_config(section, config_element=config_element, multi=multi)
        source = section
    if isinstance(source, str):
        source = {"URL": source}
    if not isinstance(source, Mapping):
        raise ConfigurationError(
            config_element,
            f"a {type(source).__name__} is not a Redis configuration",
            "a Flask app, a mapping, a URL string or an IRedisSimpleConfig / IRedisMultiConfig",
        )
    _check_shape(source, config_element, multi)
    try:
        return model_cls.model_validate(dict(source)), label
    except ValidationError as exc:
        raise _configuration_error(exc, label, model_cls) from None


def _check_shape(section: Mapping[Any, Any], config_element: str, multi: bool) -> None:
    """Point a Single/Multi mix-up at the right class instead of reporting a missing or unknown key."""
    has_databases = any(str(key).upper() == "DATABASES" for key in section)
    if multi and not has_databases:
        raise ConfigurationError(
            f"{config_element}.DATABASES",
            "is required by FlaskRedisMulti",
            "a mapping of name -> database index; use FlaskRedisSingle for one database",
        )
    if not multi and has_databases:
        raise ConfigurationError(
            f"{config_element}.DATABASES",
            "is not used by FlaskRedisSingle",
            "DATABASE and NAME for one database; use FlaskRedisMulti for several",
        )


def _setting_name(name: str) -> str | None:
    """The config field (or client keyword) a flat key names without its prefix (``DB`` -> ``DATABASE``),
    or None when it is not a Redis setting of ours."""
    name = FLAT_ALIASES.get(name, name)
    return name if name in _fields() or name.lower() in REDIS_KWARGS else None


def _warn_missing(config: Mapping[str, Any], config_element: str) -> None:
    """No section and no flat key: the defaults (localhost:6379) are used, which is seldom meant; say so, and
    name a config key that looks like a misspelt section."""
    near = difflib.get_close_matches(config_element, [str(key) for key in config], n=1, cutoff=0.75)
    hint = f"; app.config has {near[0]!r}: is that meant to be {config_element!r}?" if near else ""
    log.warning(
        "no Redis configuration for the %s extension (neither app.config[%r] nor %s_* keys): connecting to "
        "redis://localhost:6379/0%s",
        config_element,
        config_element,
        config_element,
        hint,
    )


def _did_you_mean(name: str, known: Iterable[str], lead: str = "") -> str:
    """`` (did you mean X?)`` for the known key closest to ``name``, or nothing when none is close."""
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {lead}{near[0]}?)" if near else ""


def _fields() -> dict[str, Any]:
    """Every config field of both models, by name."""
    return {**IRedisSimpleConfig.model_fields, **IRedisMultiConfig.model_fields}


def _warn_shadowed_flat_keys(config: Mapping[str, Any], config_element: str) -> None:
    """Flat keys are read only when the nested section is absent: say so when both are there."""
    lead = config_element + "_"
    shadowed = sorted(key for key in config if key.startswith(lead) and _setting_name(key[len(lead) :].upper()))
    if shadowed:
        log.warning(
            "ignoring config key(s) %s: the nested %s section is used instead", ", ".join(shadowed), config_element
        )


def _flat_keys(config: Mapping[str, Any], config_element: str) -> tuple[dict[str, Any], Label]:
    """Collect Flask-And-Redis style keys (``REDIS_HOST``, ``REDIS_DB`` ...) into a section."""
    lead = config_element + "_"
    section: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in config.items():
        if not key.startswith(lead):
            continue
        name = _setting_name(key[len(lead) :].upper())
        if name is not None:
            if name in section and section[name] != value:
                raise ConfigurationError(key, f"differs from {written[name]}, which sets the same", "one of the two")
            section[name] = value
            written[name] = key
        else:
            log.warning(
                "ignoring config key %s: not a Redis setting of the %s extension%s",
                key,
                config_element,
                _did_you_mean(key[len(lead) :].upper(), _fields(), lead),
            )

    def label(path: tuple[str, ...]) -> str:
        head = written.get(path[0], lead + path[0]) if path else config_element
        return ".".join((head, *path[1:]))

    return section, label


def _configuration_error(exc: ValidationError, label: Label, model_cls: type[BaseModel]) -> ConfigurationError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    path = tuple(str(part) for part in first["loc"])
    fields = _fields()
    field_name = next((part for part in reversed(path) if part in fields), "")  # not a database NAME in capitals
    model_field = fields.get(field_name)
    expected = model_field.description if model_field else None
    problem = first["msg"]
    if first["type"] == "extra_forbidden":
        problem = "is not a known key" + _did_you_mean(path[-1].upper(), model_cls.model_fields)
        expected = "one of " + ", ".join(sorted(model_cls.model_fields))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ConfigurationError(label(path), problem[:1].lower() + problem[1:] + more, expected)
