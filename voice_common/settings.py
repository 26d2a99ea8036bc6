"""Typed configuration: each option declared once, as a field of a frozen dataclass.

A field made with `setting(default, help)` is an option: its name is the flag (`--name`),
the environment twin (`PREFIX_NAME`) and the TOML key, its annotation the type, and its
default is written there and nowhere else. `options_of` derives the `Option`s (which build
`--help`, the README tables and the resolution in config.py) from those fields, and `load`
resolves them once into the service's configuration object.

A service's configuration is one class combining sections (`class SttConfig(WhisperConfig,
ServerConfig)`), so every option has one name from the command line to the code that uses
it; a part that needs only a section (a backend) is given just that, with `Section.of`.
The sections all three processes share are here: `ProcessConfig`, `ConnectionLimits`,
`ServerConfig`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, TypeVar

from .config import (
    URI_FORMS,
    ConfigError,
    Option,
    http_address,
    parse_bool,
    parse_uri,
    parse_zeroconf_name,
    positive_float,
    positive_int,
    resolve,
    usage_error,
)


class _Spec(typing.NamedTuple):
    help: str
    parse: Callable[[Any], Any] | None
    metavar: str | None
    const: Any


_SPEC = "voice_common.option"


def setting(default: Any = dataclasses.MISSING, help: str = "", *, parse: Callable[[Any], Any] | None = None,
            metavar: str | None = None, const: Any = None, secret: bool = False) -> Any:
    """A field of a configuration dataclass that is an option.

    `default` is the option's default (the one place it is written; a section shared by
    several services may leave it out, and each service then sets it by redeclaring the
    field with a plain default). `parse` turns a flag, environment or TOML value into the
    field's type; without it, the annotation says: int, float, str, bool, a Literal (the
    choices), an optional one, or a tuple of one (a repeatable option). `{service}` in the
    help is the service's name. `const` is the value of `--flag` given without one; a
    `secret` (a password) is left out of the configuration's repr, so it never reaches a log.
    """
    return dataclasses.field(default=default, repr=not secret, metadata={_SPEC: _Spec(help, parse, metavar, const)})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every configuration dataclass (a service's whole configuration, or a section
    of it that one part receives: a backend gets only its own section, built with `of`).

    `__post_init__` of a section fills in defaults that depend on other options and checks
    what one option alone cannot (raising ConfigError); each calls super().__post_init__().
    """

    #: Environment prefix (`STT` -> `STT_MODEL`) and service name, on the top-level class.
    PREFIX: ClassVar[str] = ""
    SERVICE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        pass

    @classmethod
    def of(cls, config: object) -> Self:
        """This section of a larger configuration object (its fields, same names and values)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

    def _default(self, name: str, make: Callable[[], Any]) -> None:
        """In __post_init__: give field `name`, declared with the default None (shown as
        "unset"), the value `make()` when no option set it: a default that depends on other
        options. The field's type is what it holds afterwards."""
        if getattr(self, name) is None:
            self._set(name, make())

    def _set(self, name: str, value: Any) -> None:
        """In __post_init__: set field `name` (the dataclass is frozen)."""
        object.__setattr__(self, name, value)


def _spec(cls: type, name: str) -> _Spec | None:
    """The `setting` of field `name`, from the class that declared it (a redeclaration that
    only changes the default has none of its own)."""
    for klass in cls.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is not None and _SPEC in field.metadata:
            return typing.cast(_Spec, field.metadata[_SPEC])
    return None


def _parser_for(annotation: Any) -> tuple[Callable[[Any], Any], tuple[str, ...] | None, bool]:
    """(parse, choices, repeatable) for a field's type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            return _parser_for(inner[0])
    elif origin is tuple:
        item, _ellipsis = typing.get_args(annotation)
        parse, choices, _ = _parser_for(item)
        return parse, choices, True
    elif origin is Literal:
        return str, tuple(typing.get_args(annotation)), False
    elif annotation is bool:
        return parse_bool, None, False
    elif annotation in (int, float, str):
        return annotation, None, False
    raise TypeError(f"no parser for options of type {annotation!r}: give setting(parse=...)")


def options_of(cls: type[Settings]) -> list[Option]:
    """The options of a configuration dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    options = []
    for field in dataclasses.fields(cls):
        spec = _spec(cls, field.name)
        if spec is None:
            continue
        parse, choices, multiple = _parser_for(hints[field.name])
        default = None if field.default is dataclasses.MISSING else field.default
        options.append(Option(
            field.name, default, spec.help.replace("{service}", cls.SERVICE), type=spec.parse or parse,
            choices=choices, metavar=spec.metavar, const=spec.const, multiple=multiple,
        ))
    return options


C = TypeVar("C", bound=Settings)


def load(
    cls: type[C],
    prog: str,
    description: str,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    check: Callable[[C], None] | None = None,
) -> C:
    """Resolve `cls`'s options once into a `cls` (frozen), then run `check` (the service's
    own rules, such as "this model cannot do that language"); any mistake is one line and
    exit 2."""
    options = options_of(cls)
    raw = resolve(prog, description, cls.PREFIX, options, argv, environ)
    values: dict[str, Any] = {}
    for opt in options:
        value = getattr(raw, opt.name)
        values[opt.name] = tuple(value) if opt.multiple and value is not None else value
    try:
        config = cls(**values)
        if check is not None:
            check(config)
    except ConfigError as err:
        usage_error(str(err))
    return config


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True, kw_only=True)
class ProcessConfig(Settings):
    """What every process has: health/metrics over HTTP and logging."""

    http: str | None = setting(None, "Serve /healthz and /metrics on HOST:PORT (off when unset)",
                               parse=http_address, metavar="HOST:PORT")
    log_level: LogLevel = setting("INFO", "Logging level")
    #: As in the reference servers; resolution turns it into log_level DEBUG.
    debug: bool = setting(False, "Log at DEBUG level (the same as --log-level DEBUG)")


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits(Settings):
    """What the Wyoming server runtime (voice_common.server) bounds every connection by."""

    max_connections: int = setting(64, "Open client connections at once; more are refused with 'busy'",
                                   parse=positive_int)
    max_frame_bytes: int = setting(4 * 1024 * 1024, "Largest event header + data + payload accepted",
                                   parse=positive_int)
    idle_timeout: float = setting(30.0, "Seconds a connection may stay silent before it is closed with 'timeout'",
                                  parse=positive_float)
    read_timeout: float = setting(10.0, "Seconds to receive the rest of an event once its header arrived",
                                  parse=positive_float)


@dataclass(frozen=True, kw_only=True)
class ListenConfig(Settings):
    """Where a Wyoming server is reached. `uri` has no default here: each service has its port."""

    uri: str = setting(help=f"Where to listen: {URI_FORMS} (events on stdin/stdout, logs on stderr)",
                       parse=parse_uri)
    zeroconf: str | None = setting(
        None, "Advertise on the LAN as _wyoming._tcp with this instance name (given without a name: "
        "<hostname>-{service}; off when unset)", parse=parse_zeroconf_name, metavar="NAME", const="")
    zeroconf_host: str | None = setting(None, "Address to advertise (default: this host's LAN address)")


@dataclass(frozen=True, kw_only=True)
class ServerConfig(ProcessConfig, ConnectionLimits, ListenConfig):
    """A Wyoming server (voice_common.app.run_service). Fields are ordered from the last base
    to the first, then the class's own: a service lists its own sections before this one.
    `max_sessions` has no default here: each service says what a session costs it."""

    max_sessions: int = setting(help="Requests served at once; more get an error with code 'busy'",
                                parse=positive_int)
