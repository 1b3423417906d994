"""ISIS cube files for the ISIS stand-ins: the label as text, blobs, pixels (NOT the real ISIS).

A cube label is kept as a tree of its own text (:class:`Node`, :class:`Key`): values are
never re-encoded, so a program that changes one group (``spiceinit``) leaves every other
keyword exactly as it was written (``StartTime = 2009-06-01T00:38:16.057`` stays so; a PVL
library's round trip would not). The layout follows ``Cube.cpp`` (DOI-USGS/ISIS3 at
7ca57fa91, ``isis/src/base/objs/Cube/Cube.cpp``): an attached label padded to its reserved
size (the ``Label`` object's ``Bytes``), the core after it, then tables and blobs, each
named in the label by ``StartByte`` (1-based) and ``Bytes``; a blob rewritten with more
bytes is appended at the end of the file. ``Process::SetOutputCube``
(``Process/Process.cpp:383-444``) gives a new cube the input's groups, ``NaifKeywords``,
tables, original label and history plus one history entry, and reserves
``max(65536, input label + 6144)`` label bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import os
import re
import socket

import numpy as np
from _isis_cli import IO, PROGRAMMER, IsisError

LABEL_BYTES = 65536
_OPEN = re.compile(r"^(Object|Group)\s*=\s*(.+)$", re.IGNORECASE)
_CLOSE = re.compile(r"^End_(Object|Group)\b", re.IGNORECASE)


@dataclasses.dataclass
class Key:
    """A keyword and its value exactly as written (continuation lines joined by newlines)."""

    name: str
    value: str


@dataclasses.dataclass
class Node:
    """An ``Object`` or ``Group`` (or the label root) and its keywords and children, in order."""

    kind: str
    name: str
    items: list = dataclasses.field(default_factory=list)

    def find(self, kind: str, name: str) -> Node | None:
        return next((i for i in self.items if isinstance(i, Node) and i.kind == kind
                     and i.name.lower() == name.lower()), None)

    def nodes(self, kind: str, name: str | None = None) -> list[Node]:
        return [i for i in self.items if isinstance(i, Node) and i.kind == kind
                and (name is None or i.name.lower() == name.lower())]

    def remove(self, node: Node) -> None:
        self.items = [i for i in self.items if i is not node]

    def key(self, name: str) -> Key | None:
        return next((i for i in self.items if isinstance(i, Key) and i.name.lower() == name.lower()), None)

    def value(self, name: str) -> str | None:
        """The keyword's value without quotes and units, or None."""
        k = self.key(name)
        if k is None:
            return None
        return re.sub(r"\s*<[^>]*>\s*$", "", k.value.strip().strip('"')).strip()

    def put(self, name: str, value) -> None:
        """``PvlContainer::addKeyword(..., Replace)``: replace in place or append."""
        text = fmt(value)
        k = self.key(name)
        if k is None:
            self.items.append(Key(name, text))
        else:
            k.value = text

    def drop(self, name: str) -> None:
        self.items = [i for i in self.items if not (isinstance(i, Key) and i.name.lower() == name.lower())]


def fmt(value) -> str:
    """A value as ISIS writes it: numbers bare (``toString``: 14 significant digits), lists in parentheses."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.14g}"
        return text if any(c in text for c in ".en") else text + ".0"
    text = str(value)
    if text.startswith("<") or re.fullmatch(r"[-+$\w./:]+( <[\w/]+>)?", text):
        return text
    return '"' + text.replace('"', "'") + '"'


def parse_label(text: str) -> Node:
    """The label text as a tree; values stay text."""
    root = Node("Root", "")
    stack, current = [root], None
    for line in text.splitlines():
        s = line.strip().rstrip("\0")
        if current is not None:  # continuation of a multi-line value
            current.value += "\n" + s
            if _balanced(current.value):
                current = None
            continue
        if not s or s.startswith(("/*", "#")):
            continue
        if s == "End":
            break
        m = _OPEN.match(s)
        if m:
            node = Node(m.group(1).capitalize(), m.group(2).strip().strip('"'))
            stack[-1].items.append(node)
            stack.append(node)
        elif _CLOSE.match(s):
            stack.pop()
        elif "=" in s:
            name, _, value = s.partition("=")
            key = Key(name.strip(), value.strip())
            stack[-1].items.append(key)
            if not _balanced(key.value):
                current = key
        else:
            raise ValueError(f"unreadable label line {line!r}")
    return root


def _balanced(value: str) -> bool:
    return value.count("(") <= value.count(")") and value.count('"') % 2 == 0


def render(root: Node) -> str:
    """The label text: two spaces per level and aligned ``=`` as ISIS writes it."""
    out: list[str] = []
    _render_items(root.items, 0, out)
    return "\n".join(out + ["End", ""])


def _render_items(items: list, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    width = max((len(i.name) for i in items if isinstance(i, Key)), default=0)
    for item in items:
        if isinstance(item, Key):
            first, *rest = item.value.split("\n")
            out.append(f"{pad}{item.name:<{width}} = {first}")
            out.extend(" " * (len(pad) + width + 3) + r for r in rest)
        else:
            if depth == 0 or out and out[-1].strip():
                out.append("")
            name = f'"{item.name}"' if " " in item.name else item.name
            out.append(f"{pad}{item.kind} = {name}")
            _render_items(item.items, depth + 1, out)
            out.append(f"{pad}End_{item.kind}")


# ----------------------------------------------------------------------- cubes
class Cube:
    """An existing cube: its path, label tree and where its parts lie."""

    def __init__(self, path: str):
        # Cube::open (Cube.cpp:2350-2420): the name as given, else with .cub added
        if not os.path.exists(path) and os.path.exists(path + ".cub"):
            path += ".cub"
        self.path = path
        try:
            from ctxdask.io.isis_read import read_label_text

            self.text = read_label_text(path)
            from ctxdask import pvltext

            pvltext.loads(self.text)  # what ctxdask and every other reader must accept
            self.root = parse_label(self.text)
        except Exception as e:  # noqa: BLE001 - any failure is Message::FileOpen
            raise IsisError(IO, f"Unable to open [{path}].") from e
        self.isis = self.root.find("Object", "IsisCube")
        if self.isis is None or self.isis.find("Object", "Core") is None:
            raise IsisError(IO, f"Unable to open [{path}].")

    def group(self, name: str) -> Node | None:
        return self.isis.find("Group", name)

    def require_group(self, name: str) -> Node:
        """``PvlObject::findGroup``'s error when a group is missing."""
        group = self.group(name)
        if group is None:
            raise IsisError(PROGRAMMER, f"Unable to find PVL group [{name}] in file [{self.path}].")
        return group

    @property
    def label_bytes(self) -> int:
        label = self.root.find("Object", "Label")
        if label is not None and label.value("Bytes"):
            return int(label.value("Bytes"))
        return int(self.isis.find("Object", "Core").value("StartByte")) - 1

    @property
    def dimensions(self) -> tuple[int, int]:
        dims = self.isis.find("Object", "Core").find("Group", "Dimensions")
        return int(dims.value("Lines")), int(dims.value("Samples"))

    @property
    def pixel_type(self) -> str:
        return self.isis.find("Object", "Core").find("Group", "Pixels").value("Type")

    def blob(self, node: Node) -> bytes:
        start, size = int(node.value("StartByte")) - 1, int(node.value("Bytes"))
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(size)
        if len(data) != size:
            raise IsisError(IO, f"Unable to read [{node.name}] from [{self.path}]: the file is truncated.")
        return data

    def table(self, name: str) -> np.ndarray:
        """``Cube::readTable`` (Cube.cpp:959-967)."""
        node = next((t for t in self.root.nodes("Object", "Table") if t.value("Name") == name), None)
        if node is None:
            cause = IsisError(PROGRAMMER, f"Unable to find Table [{name}] in file [{self.path}].")
            raise IsisError(PROGRAMMER, f"Failed to read table [{name}] from cube [{self.path}].", cause)
        from ctxdask.io.isis_read import read_table

        return read_table(self.path, name)

    def pixels(self) -> np.ndarray:
        """Band 1 as float64, special pixels as NaN."""
        from ctxdask import pvltext
        from ctxdask.io.isis_read import CubeLayout, read_block

        layout = CubeLayout.from_label(self.path, pvltext.loads(self.text))
        expected = layout.start + layout.data_bytes
        if os.path.getsize(self.path) < expected:
            raise IsisError(IO, f"Unable to read cube [{self.path}]: the file is truncated.")
        return read_block(layout, 0, layout.lines, dtype=np.float64)


def history_entry(app: str, params: dict[str, str]) -> str:
    """One ``History`` entry (``History::AddEntry`` via ``Application::History``)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    node = Node("Object", app, [
        Key("IsisVersion", '"ctxdask test stand-in (not ISIS)"'),
        Key("ProgramVersion", "stand-in"),
        Key("ExecutionDateTime", datetime.datetime.now().replace(microsecond=0).isoformat()),
        Key("HostName", socket.gethostname()),
        Key("UserName", user),
        Key("Description", f'"ctxdask test stand-in for {app}"'),
        Node("Group", "UserParameters", [Key(k, fmt(v)) for k, v in params.items()]),
    ])
    return render(Node("Root", "", [node])).removesuffix("End\n").lstrip("\n")


def append_blob(f, node: Node, data: bytes) -> None:
    """Write a blob at the end of the open file and point its label object at it."""
    f.seek(0, os.SEEK_END)
    node.put("StartByte", f.tell() + 1)
    node.put("Bytes", len(data))
    f.write(data)


def write_label(f, root: Node, reserved: int, path: str) -> None:
    """Rewrite the attached label in its reserved space (``Cube::writeLabels``)."""
    text = render(root).encode()
    if len(text) > reserved:
        raise IsisError(IO, f"Label space is full in [{path}] unable to write labels")
    f.seek(0)
    f.write(text.ljust(reserved, b"\0"))


def write_derived(src: Cube, path: str, data: np.ndarray, pixel_type: str, app: str,
                  params: dict[str, str], extra_groups: list[Node] = ()) -> None:
    """A new cube from ``src`` as ``Process::SetOutputCube`` makes it, holding ``data`` (NaN: Null).

    Tile storage with ISIS's tile size (``CubeTileHandler::findGoodSize``, via
    :func:`ctxdask.io.isis_write.good_tile_size`); ``src``'s groups (then ``extra_groups``),
    ``NaifKeywords``, tables, original label and history plus an entry for ``app``.
    """
    from ctxdask.io.isis_pixels import encode_block, good_tile_size
    from ctxdask.io.isis_pixels import pixel_type as ptype_of

    ptype = ptype_of(pixel_type)
    lines, samples = data.shape
    ts, tl = good_tile_size(samples, ptype.itemsize), good_tile_size(lines, ptype.itemsize)
    nrow, ncol = -(-lines // tl), -(-samples // ts)
    tiles = np.full((nrow * tl, ncol * ts), ptype.null, dtype=ptype.dtype.newbyteorder("<"))
    tiles[:lines, :samples] = encode_block(data, ptype, "<")
    core_bytes = tiles.nbytes
    reserved = max(LABEL_BYTES, len(src.text.encode()) + 6144)

    core = Node("Object", "Core", [
        Key("StartByte", str(reserved + 1)), Key("Format", "Tile"),
        Key("TileSamples", str(ts)), Key("TileLines", str(tl)),
        Node("Group", "Dimensions", [Key("Samples", str(samples)), Key("Lines", str(lines)),
                                     Key("Bands", "1")]),
        Node("Group", "Pixels", [Key("Type", pixel_type), Key("ByteOrder", "Lsb"),
                                 Key("Base", "0.0"), Key("Multiplier", "1.0")]),
    ])
    groups = [g for g in src.isis.items if isinstance(g, Node) and g.kind == "Group"]
    isis = Node("Object", "IsisCube", [core, *groups, *extra_groups])
    root = Node("Root", "", [isis, Node("Object", "Label", [Key("Bytes", str(reserved))])])
    blobs = []
    for node in src.root.items:
        if isinstance(node, Node) and node.kind == "Object" and node.name in ("Table", "OriginalLabel"):
            copy = Node(node.kind, node.name,
                        [Key(i.name, i.value) if isinstance(i, Key) else i for i in node.items])
            blobs.append((copy, src.blob(node)))
    history = src.root.find("Object", "History")
    old = src.blob(history) if history is not None else b""
    hist = Node("Object", "History", [Key("Name", "IsisCube"), Key("StartByte", "0"), Key("Bytes", "0")])
    blobs.append((hist, old + history_entry(app, params).encode()))
    root.items += [b for b, _ in blobs]
    naif = src.root.find("Object", "NaifKeywords")
    if naif is not None:
        root.items.append(naif)

    tmp = f"{path}.part"
    with open(tmp, "wb") as f:
        f.write(b"\0" * reserved)
        f.write(tiles.reshape(nrow, tl, ncol, ts).transpose(0, 2, 1, 3).tobytes())  # tile order
        assert f.tell() == reserved + core_bytes
        for node, blob in blobs:
            append_blob(f, node, blob)
        write_label(f, root, reserved, path)
    os.replace(tmp, path)
