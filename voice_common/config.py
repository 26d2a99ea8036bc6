"""Configuration: CLI flag > environment variable > TOML file > default.

`Option`s (derived from each service's configuration dataclass, see settings.py) build
an argparse parser whose `--help` names every environment twin and the README's option
tables, and `resolve` finds each option's value with a fixed precedence.

A mistake in the configuration, or one found while starting (a port in use), is
one line on stderr, `PROG: error: --OPTION ...: what is wrong`, and exit code 2:
no usage block, no traceback, and before any model loads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range, or cannot be used
    (an address in use); the message names the option and says what to change."""


#: The running program's name for one-line errors (set by `resolve`).
_program = "wyoming-voice-services"


def usage_error(message: str) -> NoReturn:
    """Report a configuration or start-up mistake as one line on stderr; exit 2."""
    print(f"{_program}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (the full usage is in --help), not a usage block."""

    def error(self, message: str) -> NoReturn:
        usage_error(f"{message} (see --help)")


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"not a boolean: {value!r}")


def parse_zeroconf_name(value: Any) -> str | None:
    """'' or a true word -> default name (''), a false word -> None (off), else the name."""
    text = str(value).strip()
    if text.lower() in _TRUE or text == "":
        return ""
    if text.lower() in _FALSE:
        return None
    return text


def positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    return number


def non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    return number


def positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be more than 0, got {number:g}")
    return number


def non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(f"must not be negative, got {number:g}")
    return number


def parse_list(value: Any) -> list[str]:
    """A list from TOML (a list) or from env/CLI (comma separated)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


URI_FORMS = "tcp://HOST:PORT, unix://PATH or stdio://"


def parse_uri(value: Any) -> str:
    """A Wyoming server address: tcp://HOST:PORT, unix://PATH or stdio://."""
    text = str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError as err:
            raise ConfigError(f"{text!r} has a bad port ({err}): use {URI_FORMS}") from err
        if port is None:
            raise ConfigError(f"{text!r} has no port: use tcp://HOST:PORT, e.g. tcp://0.0.0.0:10300")
    elif parsed.scheme == "unix":
        if not (parsed.netloc + parsed.path):
            raise ConfigError(f"{text!r} has no path: use unix://PATH, e.g. unix:///run/wyoming.sock")
    elif parsed.scheme != "stdio":
        raise ConfigError(f"{text!r} is not supported: use {URI_FORMS}")
    return text


def http_address(value: Any) -> str:
    """HOST:PORT for the health/metrics endpoint (checked here, used by parse_host_port)."""
    parse_host_port(str(value))
    return str(value)


@dataclass(frozen=True)
class Option:
    """One setting: `--name-with-dashes`, env `PREFIX_NAME`, TOML key `name`."""

    name: str
    default: Any
    help: str
    type: Callable[[Any], Any] = str
    choices: Sequence[str] | None = None
    metavar: str | None = None
    #: For `--flag [VALUE]`: the value when the flag is given without one.
    const: Any = None
    #: Repeatable flag (`--stt A --stt B`); env/TOML take a comma list / array.
    multiple: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def env_name(self, prefix: str) -> str:
        return f"{prefix}_{self.name.upper()}"

    def convert(self, raw: Any, source: str) -> Any:
        if raw is None:
            return None
        try:
            values = [self.type(v) for v in parse_list(raw)] if self.multiple else [self.type(raw)]
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{self.flag} ({source}): {err}") from err
        for value in values:
            if self.choices is not None and value not in self.choices:
                raise ConfigError(f"{self.flag} ({source}): {value!r} is not one of {', '.join(self.choices)}")
        return values if self.multiple else values[0]

    def shown_default(self) -> str:
        """The default as --help and the README show it (paths under the home directory as ~)."""
        if self.default is None or self.default == () or self.default == []:
            return "unset"
        if isinstance(self.default, (list, tuple)):
            return ",".join(map(str, self.default))
        return str(self.default).replace(str(Path.home()), "~")


def build_parser(prog: str, description: str, prefix: str, options: Sequence[Option]) -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=prog,
        description=description,
        epilog=(
            f"Every flag has an environment twin ({prefix}_<NAME>) and a key in the TOML "
            f"file given by --config ({prefix}_CONFIG). Precedence: flag > environment > file > default."
        ),
    )
    parser.add_argument("--config", metavar="PATH", help=f"TOML configuration file [env {prefix}_CONFIG]")
    for opt in options:
        help_text = f"{opt.help} [env {opt.env_name(prefix)}; default: {opt.shown_default()}]"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": None, "help": help_text}
        if opt.type is parse_bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = opt.metavar or opt.name.upper()
            if opt.choices is not None:
                kwargs["choices"] = list(opt.choices)
                kwargs["metavar"] = "{" + ",".join(opt.choices) + "}"
            if opt.multiple:  # choices are checked per item in convert (the value may be a list)
                kwargs["action"] = "append"
                kwargs.pop("choices", None)
            if opt.const is not None:
                kwargs["nargs"] = "?"
                kwargs["const"] = opt.const
        parser.add_argument(opt.flag, **kwargs)
    return parser


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as err:
        raise ConfigError(f"--config {path}: no such file") from err
    except IsADirectoryError as err:
        raise ConfigError(f"--config {path}: is a directory, not a TOML file") from err
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot be read ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {path}: not valid TOML: {err}") from err
    return {key.replace("-", "_"): value for key, value in data.items()}


def resolve(
    prog: str,
    description: str,
    prefix: str,
    options: Sequence[Option],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    check: Callable[[argparse.Namespace], None] | None = None,
) -> argparse.Namespace:
    """Parse argv and merge env/TOML/defaults, then run `check` (the service's own rules,
    such as "this model cannot do that language"); any mistake is one line and exit 2."""
    global _program
    _program = prog
    environ = os.environ if environ is None else environ
    parser = build_parser(prog, description, prefix, options)
    args = parser.parse_args(argv)
    try:
        config_path = args.config or environ.get(f"{prefix}_CONFIG")
        file_values = load_toml(config_path) if config_path else {}
        known = {opt.name for opt in options}
        unknown = sorted(set(file_values) - known)
        if unknown:
            raise ConfigError(
                f"--config {config_path}: unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)} (the keys are the option names, see --help)"
            )
        result = argparse.Namespace(config=config_path)
        for opt in options:
            cli = getattr(args, opt.name)
            env = environ.get(opt.env_name(prefix))
            if cli is not None:
                value = opt.convert(cli if not opt.multiple else ",".join(cli), "flag")
            elif env is not None:
                value = opt.convert(env if env != "" or opt.const is None else opt.const, "environment")
            elif opt.name in file_values:
                value = opt.convert(file_values[opt.name], f"file {config_path}")
            else:
                value = opt.default
            setattr(result, opt.name, value)
        if getattr(result, "debug", False):
            result.log_level = "DEBUG"
        if check is not None:
            check(result)
    except ConfigError as err:
        usage_error(str(err))
    return result


def parse_host_port(value: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT') -> (host, port); IPv6 in brackets."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def existing_path(value: str) -> str:
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"no such file or directory: {value}")
    return str(path)


def options_markdown(prefix: str, options: Sequence[Option]) -> str:
    """The README's option table, generated from the same Options that build `--help`."""
    rows = ["| flag | environment | default | what |", "|---|---|---|---|"]
    rows.append(f"| `--config PATH` | `{prefix}_CONFIG` | unset | TOML configuration file |")
    for opt in options:
        flag = f"{opt.flag} [{opt.metavar}]" if opt.const is not None else opt.flag
        if opt.type is parse_bool:
            flag = f"{opt.flag}, --no-{opt.flag[2:]}"
        default = opt.shown_default()
        default = default if default == "unset" else f"`{default}`"
        text = opt.help.replace("|", "\\|")
        if opt.choices:
            text += " (" + " \\| ".join(opt.choices) + ")"
        if opt.multiple and "repeat" not in text:
            text += " (repeatable)"
        rows.append(f"| `{flag}` | `{opt.env_name(prefix)}` | {default} | {text} |")
    return "\n".join(rows) + "\n"
