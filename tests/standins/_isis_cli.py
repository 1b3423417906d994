"""ISIS's command line and error reporting, for the ISIS stand-ins (NOT the real ISIS).

Follows ISIS 9 (DOI-USGS/ISIS3 at 7ca57fa91); paths below are under ``isis/src/base/objs``:

- ``UserInterface/UserInterface.cpp:437-521``: every argument is ``NAME=value`` (also
  ``NAME= value`` and ``NAME = value``, ``getNextParameter`` 955-1030); arguments starting
  with ``-`` are reserved options; a failing ``PutAsString`` is re-thrown as
  ``Invalid command line`` wrapping the cause.
- ``IsisAml/IsisAml.cpp:2150-2190`` (``ReturnParam``): a parameter name matches
  case-insensitively, exactly or as the unique prefix of one parameter, else
  ``Unknown parameter [x].`` or ``Parameter [x] is not unique.``; a second value is
  ``A value for this parameter [x] has already been entered.`` (68-80).
- ``IsisAml.cpp:2200-2520`` (``Verify``) and 2575-2680 (``VerifyAll``, run by
  ``Application::Run`` before the program, ``Application/Application.cpp:219``): value
  types, list options, minimums, boolean exclusions and inclusions.
- ``IsisAml.cpp:724-737`` (``GetCubeName``) and 641-655 (``GetFileName``): a parameter with
  no value and no default is ``Parameter [FROM] has no value.``
- ``IException/IException.cpp:562-631``: messages print newest first, one line each,
  ``**USER ERROR** message.``; ``Application.cpp:139-141`` and 699: the process exits with
  the error type, ``Unknown`` 1, ``User`` 2, ``Programmer`` 3, ``Io`` 4
  (``IException/IException.h:111-150``).
"""

from __future__ import annotations

import dataclasses
import sys

UNKNOWN, USER, PROGRAMMER, IO = 1, 2, 3, 4
_TYPE_NAMES = {UNKNOWN: "ERROR", USER: "USER ERROR", PROGRAMMER: "PROGRAMMER ERROR", IO: "I/O ERROR"}
#: ``UserInterface.cpp:449-463``: the reserved options (unique prefixes accepted)
RESERVED = ("-GUI", "-NOGUI", "-BATCHLIST", "-LAST", "-RESTORE", "-WEBHELP", "-HELP", "-ERRLIST",
            "-ONERROR", "-SAVE", "-INFO", "-PREFERENCE", "-LOG", "-VERBOSE", "-PID")
_TRUE, _FALSE = ("YES", "TRUE", "Y", "T"), ("NO", "FALSE", "N", "F", "")


class IsisError(Exception):
    """An ISIS ``IException``: a type, a message and the exceptions it wraps (oldest first)."""

    def __init__(self, kind: int, message: str, cause: IsisError | None = None):
        super().__init__(message)
        self.kind, self.message = kind, message
        self.chain = ([*cause.chain] if cause else []) + [(kind, message)]

    def text(self) -> str:
        """``IException::toString``: newest first, one ``**TYPE** message.`` line each."""
        return "\n".join(f"**{_TYPE_NAMES[k]}** {m.rstrip('.')}." for k, m in reversed(self.chain))


def report(error: IsisError) -> None:
    """Print an error as ISIS does (stderr) and exit with its type."""
    print(error.text(), file=sys.stderr, flush=True)
    sys.exit(error.kind)


def to_bool(value: str) -> bool:
    """``IsisAml::StringToBool`` (``IsisAml.cpp:3056-3091``)."""
    v = value.strip().upper()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise IsisError(PROGRAMMER, f"Invalid boolean value [{value}].")


@dataclasses.dataclass(frozen=True)
class Param:
    """One ``<parameter>`` of an application's .xml."""

    name: str
    type: str  # cube, filename, boolean, integer, double, string
    default: str | None = None
    internal_default: bool = False
    options: tuple[str, ...] = ()  # <list> option values
    option_excludes: dict | None = None  # option value -> parameters it excludes
    excludes: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    minimum: float | None = None


class Ui:
    """The parsed command line of one application: values by parameter name."""

    def __init__(self, app: str, params: list[Param], argv: list[str]):
        self.app, self.params = app, {p.name: p for p in params}
        self.values: dict[str, str] = {}
        try:
            self._parse(argv)
        except IsisError as e:
            report(e)
        try:
            self._verify_all()
        except IsisError as e:
            report(e)

    # ---------------------------------------------------------------- parsing
    def _lookup(self, name: str) -> Param:
        """``IsisAml::ReturnParam``: exact name or unique prefix, case-insensitive."""
        up = name.upper()
        if up in self.params:
            return self.params[up]
        matches = [p for n, p in self.params.items() if n.startswith(up)]
        if not matches:
            raise IsisError(USER, f"Unknown parameter [{name}].")
        if len(matches) > 1:
            raise IsisError(USER, f"Parameter [{name}] is not unique.")
        return matches[0]

    def _parse(self, argv: list[str]) -> None:
        i = 0
        while i < len(argv):
            token = argv[i]
            if "=" not in token:
                name, value = token, ""
                if i + 2 < len(argv) and argv[i + 1] == "=":
                    value, i = argv[i + 2], i + 2
            elif token.endswith("="):
                name = token[:-1]
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            elif token.index("=") > 0:
                name, _, value = token.partition("=")
            else:
                raise IsisError(USER, f"Unknown parameter [{token}]")
            i += 1
            if name.startswith("-"):
                self._reserved(name, value)
                continue
            try:
                param = self._lookup(name)
                if param.name in self.values:
                    raise IsisError(USER, f"A value for this parameter [{name}] has already been entered.")
            except IsisError as e:
                raise IsisError(USER, "Invalid command line", e) from None
            self.values[param.name] = value.strip()

    def _reserved(self, name: str, value: str) -> None:
        """``UserInterface::resolveParameter`` / ``evaluateOption`` (only -HELP does anything here)."""
        up = name.upper()
        matches = [o for o in RESERVED if o.startswith(up)]
        if up in RESERVED:
            matches = [up]
        if len(matches) != 1:
            raise IsisError(USER, f"Invalid command line option [{name}].")
        if matches[0] == "-HELP":
            for p in self.params.values():
                shown = p.default if p.default is not None else ("Computed" if p.internal_default else "")
                print(f"{p.name:<13}= {shown}".rstrip())
            sys.exit(0)

    # ------------------------------------------------------------- verifying
    def _verify_all(self) -> None:
        for p in self.params.values():
            value = self.values.get(p.name)
            if value is not None:
                self._verify_value(p, value)
            for other in p.excludes:
                if p.type == "boolean" and self.boolean(p.name) and other in self.values:
                    raise IsisError(USER, f"Parameter [{other}] must NOT be used if parameter "
                                          f"[{p.name}] equates to true.")
            for other in p.includes:
                q = self.params[other]
                if p.type == "boolean" and self.boolean(p.name) and q.name not in self.values \
                        and q.default is None and not q.internal_default:
                    raise IsisError(USER, f"Parameter [{q.name}] must be used if parameter "
                                          f"[{p.name}] equates to true.")
            if p.option_excludes and value is not None:
                for other in p.option_excludes.get(self.string(p.name), ()):
                    if other in self.values:
                        raise IsisError(USER, f"Parameter [{other}] must NOT be used if parameter "
                                              f"[{p.name}] is [{self.string(p.name)}].")

    def _verify_value(self, p: Param, value: str) -> None:
        if p.type == "integer":
            try:
                number = float(int(value))
            except ValueError:
                raise IsisError(USER, f"Unable to convert [{value}] to an integer, parameter [{p.name}].") from None
        elif p.type == "double":
            try:
                number = float(value)
            except ValueError:
                raise IsisError(USER, f"Unable to convert [{value}] to a double, parameter [{p.name}].") from None
        elif p.type == "boolean":
            try:
                to_bool(value)
            except IsisError as e:
                raise IsisError(USER, f"Illegal value for [{p.name}], [{value}].", e) from None
        if p.options:
            up = value.upper()
            if up not in p.options and not [o for o in p.options if o.startswith(up)]:
                raise IsisError(USER, f"Value of [{p.name}] must be one of [{', '.join(p.options)}].")
        if p.minimum is not None and p.type in ("integer", "double") and number < p.minimum:
            raise IsisError(USER, f"Parameter [{p.name}] must be greater than or equal to [{p.minimum:g}].")

    # ---------------------------------------------------------------- values
    def entered(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> str:
        p = self.params[name]
        if name in self.values:
            return self.values[name]
        if p.default is None:
            raise IsisError(USER, f"Parameter [{name}] has no value.")
        return p.default

    def boolean(self, name: str) -> bool:
        return to_bool(self.get(name))

    def integer(self, name: str) -> int:
        return int(self.get(name))

    def string(self, name: str) -> str:
        """``GetString`` of a list parameter: the full option a unique prefix names."""
        value = self.get(name).upper()
        p = self.params[name]
        if p.options and value not in p.options:
            value = next(o for o in p.options if o.startswith(value))
        return value

    def cube_name(self, name: str) -> str:
        """``GetCubeName``: the value without its ``+attributes``."""
        return self.get(name).split("+", 1)[0]

    def output_cube(self, name: str) -> str:
        """An output cube's file: ``Cube::create`` adds ``.cub`` unless it is there (``Cube.cpp:467``)."""
        path = self.cube_name(name)
        return path if path.endswith(".cub") else path + ".cub"
