"""ASP's command-line parsing for the stand-ins: boost::program_options as ASP configures it.

NOT ASP. Every C++ ASP program parses its arguments through
``asp::check_command_line`` (src/asp/Core/AspProgramOptions.cc:55-150 in
NeoGeographyToolkit/StereoPipeline): ``po::command_line_parser(...).options(...)
.positional(...).style(unix_style)``, so long options may be abbreviated to a
unique prefix (``allow_guessing``), take their value after ``=`` or as the next
token, and short options take it attached or next. A parse error is re-thrown
as ``ArgumentErr("Error parsing input:\\n" + what + usage)`` (:110), which
``ASP_STANDARD_CATCHES`` (src/asp/Core/Macros.h:25-38) prints to stdout as
``\\n\\nERROR: ...`` and turns into exit status 1. The wording of the boost
errors is boost's own (``unrecognised option '--x'``, ``the required argument
for option '--x' is missing``, ...).

Every program also gets ``vw::GdalWriteOptionsDescription`` (VisionWorkbench
src/vw/FileIO/GdalWriteOptions.cc): ``--threads``, ``--tile-size`` (two
values), ``--cache-size-mb``, ``--no-bigtiff``, ``--tif-compress``, ``--cog``,
``-v/--version`` and ``-h/--help`` (help and version print and exit 0,
AspProgramOptions.cc:120-145).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

ASP_VERSION = "ASP 3.7.0 (ctxdask test stand-in, NOT the real program)"


class ArgumentError(Exception):
    """ASP's ``vw::ArgumentErr``: printed as ``ERROR: ...`` on stdout, exit 1."""


def fail(message: str) -> None:
    """``ASP_STANDARD_CATCHES`` for an ``ArgumentErr`` (Macros.h:26-28): stdout, status 1."""
    sys.stdout.write(f"\n\nERROR: {message}\n\n")
    sys.stdout.flush()
    sys.exit(1)


def fail_other(message: str) -> None:
    """``ASP_STANDARD_CATCHES`` for any other exception (Macros.h:29-37): stderr, status 1."""
    sys.stderr.write(f"\n\nERROR: {message}\n\n")
    sys.stderr.flush()
    sys.exit(1)


@dataclasses.dataclass
class Option:
    """One ``add_options()`` entry: ``tokens`` is 0 for a switch, else the number of values."""

    long: str
    short: str | None = None
    tokens: int = 1
    default: Any = None
    kind: type = str


class Parser:
    """A boost ``options_description`` plus the positional names, parsed ASP's way."""

    def __init__(self, prog: str, usage: str):
        self.prog, self.usage = prog, usage
        self.options: dict[str, Option] = {}
        self.positional: list[tuple[str, int]] = []  # (name, max count; -1 = unlimited)
        self.gdal_write_options()

    def add(self, long: str, short: str | None = None, *, tokens: int = 1, default: Any = None,
            kind: type = str) -> None:
        self.options[long] = Option(long, short, tokens, default, kind)

    def switch(self, long: str, short: str | None = None) -> None:
        self.add(long, short, tokens=0, default=False, kind=bool)

    def gdal_write_options(self) -> None:
        self.add("threads", default=0, kind=int)
        self.add("tile-size", tokens=2, default=(256, 256), kind=int)
        self.add("cache-size-mb", default=1024, kind=int)
        self.switch("no-bigtiff")
        self.add("tif-compress", default="LZW")
        self.switch("cog")
        self.switch("version", "v")
        self.switch("help", "h")

    # ------------------------------------------------------------- parsing
    def _lookup(self, name: str) -> Option:
        if name in self.options:
            return self.options[name]
        matches = sorted(o for o in self.options if o.startswith(name))  # allow_guessing
        if len(matches) == 1:
            return self.options[matches[0]]
        if matches:
            alternatives = ", ".join(f"'--{m}'" for m in matches[:-1])
            raise ArgumentError(f"option '--{name}' is ambiguous and matches {alternatives}, and '--{matches[-1]}'")
        raise ArgumentError(f"unrecognised option '--{name}'")

    def _value(self, option: Option, words: list[str]) -> Any:
        try:
            values = [option.kind(w) for w in words]
        except ValueError:
            raise ArgumentError(f"the argument ('{' '.join(words)}') for option '--{option.long}' is invalid") from None
        return values[0] if option.tokens == 1 else tuple(values)

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return ``(option values by long name, positional values by name)``; exit as ASP on errors."""
        try:
            values, given, positional = self._parse(argv)
        except ArgumentError as err:
            fail(f"Error parsing input:\n\t{err}\n{self.usage_text()}")
        if given.get("help"):
            print(self.usage_text())
            sys.exit(0)
        if given.get("version"):
            print(ASP_VERSION)
            sys.exit(0)
        return values, positional

    def _parse(self, argv: list[str]):
        values = {name: o.default for name, o in self.options.items()}
        given: dict[str, Any] = {}
        loose: list[str] = []
        shorts = {o.short: o for o in self.options.values() if o.short}
        i = 0
        while i < len(argv):
            word = argv[i]
            i += 1
            if word == "--":
                loose += argv[i:]
                break
            if word.startswith("--") and len(word) > 2:
                name, eq, attached = word[2:].partition("=")
                option = self._lookup(name)
                words = [attached] if eq else []
            elif word.startswith("-") and len(word) > 1 and not _is_number(word):
                option = shorts.get(word[1])
                if option is None:
                    raise ArgumentError(f"unrecognised option '{word[:2]}'")
                words = [word[2:]] if len(word) > 2 else []
            else:
                loose.append(word)
                continue
            if option.tokens == 0:
                if words:
                    raise ArgumentError(f"option '--{option.long}' does not take any arguments")
                value: Any = True
            else:
                while len(words) < option.tokens and i < len(argv):
                    words.append(argv[i])
                    i += 1
                if len(words) < option.tokens:
                    raise ArgumentError(f"the required argument for option '--{option.long}' is missing")
                value = self._value(option, words)
            if option.long in given:
                raise ArgumentError(f"option '--{option.long}' cannot be specified more than once")
            given[option.long] = values[option.long] = value
        positional: dict[str, Any] = {}
        for name, count in self.positional:
            if count < 0:
                positional[name], loose = loose, []
            elif loose:
                positional[name], loose = loose[0], loose[1:]
        if loose:
            raise ArgumentError("too many positional options have been specified on the command line")
        values["_given"] = set(given)
        return values, given, positional

    def usage_text(self) -> str:
        lines = [f"Usage: {self.prog} {self.usage}", "", f"  [{ASP_VERSION}]", ""]
        for o in self.options.values():
            names = f"--{o.long}" + (f" [ -{o.short} ]" if o.short else "")
            lines.append(f"  {names}" + ("" if o.tokens == 0 else " arg") + ("" if o.default in (None, False) else
                                                                             f" (={o.default})"))
        return "\n".join(lines) + "\n"


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
