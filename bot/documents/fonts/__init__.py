"""The fonts documents are printed in: parsed once per process, embedded fast.

Noto Sans (regular and bold) covers Latin, Greek and Cyrillic; a Japanese
gothic joins only when a document has characters Noto lacks (`runs` says
which font draws which part of a line).
The files here are already subsets (README.md says how they were made).

Left to itself, fpdf2 parses a font file on every `add_font` (~5 ms) and, on
every `output`, runs fontTools' subsetter (~9 ms a font) and writes a 128 KB
CID-to-glyph map (~1 ms a font): far more than laying out a receipt. So:

- `attach` gives a document a copy of a font fpdf2 parsed once (`_attach`);
- `Output`, passed to `FPDF.output`, embeds each font itself: a subset of the
  glyphs the document used, numbered by the codes fpdf2 gave them, so the PDF
  needs no CID-to-glyph map, written by `_Program.subset` in well under 1 ms.

Both rely on fpdf2 internals (2.8, pinned in pyproject); the tests in
`tests/documents/test_render.py` that check embedded fonts fail if they change.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import struct
import sys
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer, PDFFont, PDFFontStream
from fpdf.syntax import Name, PDFArray, PDFContentStream, Raw

FOLDER = Path(__file__).resolve().parent
FAMILY = "noto"  # Noto Sans: the text of every document, styles "" and "B"
JAPANESE = "jpgothic"  # for the characters Noto Sans has no glyph for (kana, kanji, ...)
_FILES = {
    f"{FAMILY}": "NotoSans-Regular.ttf",
    f"{FAMILY}B": "NotoSans-Bold.ttf",
    f"{JAPANESE}": "ChargeDeskGothicJP-Regular.ttf",
}
_BIG_ENDIAN = sys.byteorder == "big"
log = logging.getLogger(__name__)


def attach(pdf: FPDF, *, japanese: bool = False) -> None:
    """Give `pdf` Noto Sans regular and bold, and the Japanese font (`JAPANESE`) if asked.

    Like `FPDF.add_font` for each, without parsing them again: then
    `set_font(FAMILY, "" or "B")`, and `pdf.output(output_producer_class=Output)`.
    """
    keys = [FAMILY, f"{FAMILY}B"]
    if japanese:
        keys.append(JAPANESE)
    for key in keys:
        _attach(pdf, _template(key))


def needs_japanese(texts: Iterable[str]) -> bool:
    """Does any of `texts` have a character only the Japanese font can print?"""
    return any(_japanese(ch) for value in texts for ch in value if ch > _LAST_LATIN)


def runs(text: str) -> list[tuple[str, str]]:
    """`text` cut where it changes font: (FAMILY or JAPANESE, the characters in it).

    fpdf2's own fallback fonts (`set_fallback_fonts`) do this per character on
    every line, ten times slower, and lose the font after some lines (2.8.9).
    """
    found: list[tuple[str, str]] = []
    start = 0
    current = FAMILY
    for i, ch in enumerate(text):
        family = JAPANESE if ch > _LAST_LATIN and _japanese(ch) else FAMILY
        if family != current:
            if i > start:
                found.append((current, text[start:i]))
            start, current = i, family
    if start < len(text) or not found:
        found.append((current, text[start:]))
    return found


_LAST_LATIN = "\u024f"  # everything up to here is in Noto Sans: no lookups


def _japanese(ch: str) -> bool:
    code = ord(ch)
    return code not in _coverage(FAMILY) and code in _coverage(JAPANESE)


@cache
def _coverage(key: str) -> frozenset[int]:
    return frozenset(_template(key).font.cmap)


# --- parsed once -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Template:
    font: TTFFont  # parsed by fpdf2's own add_font, never part of a document
    program: _Program


_templates: dict[str, _Template] = {}
_lock = threading.Lock()


def _template(key: str) -> _Template:
    template = _templates.get(key)
    if template is None:
        with _lock:  # threads rendering at once parse each font once
            template = _templates.get(key)
            if template is None:
                template = _templates[key] = _load(key)
    return template


def _load(key: str) -> _Template:
    path = FOLDER / _FILES[key]
    family, style = key.rstrip("B"), "B" if key.endswith("B") else ""
    scratch = FPDF()
    scratch.add_font(family, style, path)
    font = scratch.fonts[key]
    assert isinstance(font, TTFFont)
    program = _Program(path.read_bytes())
    font.cw = _Widths(font.cw, font.desc.missing_width)
    font.ttfont.close()
    return _Template(font, program)


class _Widths(dict[int, float]):
    """Glyph widths that stay as parsed: looking up a character the font lacks adds nothing.

    fpdf2's own is a defaultdict, which grows with every such lookup; shared
    by every document, it would grow without bound.
    """

    def __init__(self, widths: dict[int, float], default: float) -> None:
        super().__init__(widths)
        self.default = default

    def __missing__(self, key: int) -> float:
        return self.default


# --- per document ----------------------------------------------------------------------


def _attach(pdf: FPDF, template: _Template) -> None:
    """Register a copy of a parsed font with `pdf`, as `FPDF.add_font` would have.

    fpdf2 has no public way to reuse a parsed font, so this sets `TTFFont`'s
    attributes itself. Shared with the template, never written: widths, cmap,
    glyph ids, metrics. Per document: the font's index, its subset map (the
    codes of the glyphs used) and the descriptor (fpdf2 numbers it at output).
    No parsed fontTools font: only `Output` can embed these fonts.
    """
    font = copy.copy(template.font)
    font.i = len(pdf.fonts) + 1
    font.desc = copy.copy(template.font.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font.subset = SubsetMap(font)
    font.ttfont = _NOT_PARSED  # type: ignore[assignment]
    pdf.fonts[font.fontkey] = font


class _NotParsed:
    """Where fpdf2 keeps a font's fontTools object: ours have none (see `_attach`)."""

    def _refuse(self, *_: object) -> Any:
        raise RuntimeError(
            "fonts attached by bot.documents.fonts.attach are embedded by "
            "pdf.output(output_producer_class=fonts.Output) only"
        )

    __getattr__ = __contains__ = __getitem__ = __iter__ = _refuse


_NOT_PARSED = _NotParsed()


class Output(OutputProducer):
    """fpdf2's PDF writer, except that it embeds our fonts itself, fast.

    Each font becomes a Type0 font over a CIDFontType2 whose glyph ids are the
    codes fpdf2 drew its text with (so no CIDToGIDMap: Identity is the
    default), with widths and a ToUnicode map for text extraction.
    """

    def _add_fonts(
        self,
        image_objects_per_index: Any,
        gfxstate_objs_per_name: Any,
        pattern_objs_per_name: Any,
    ) -> dict[int, Any]:
        fonts = sorted(self.fpdf.fonts.values(), key=lambda font: font.i)
        if not all(isinstance(f, TTFFont) and f.fontkey in _templates for f in fonts):
            return super()._add_fonts(
                image_objects_per_index, gfxstate_objs_per_name, pattern_objs_per_name
            )
        embedded = {font.i: self._embed(font) for font in fonts}
        # SubsetMap memoizes per instance in class-wide caches: without this every document's
        # fonts would stay in memory for good (fpdf2's own writer clears them too).
        SubsetMap.pick.cache_clear()
        SubsetMap.get_glyph.cache_clear()
        return embedded

    def _embed(self, font: TTFFont) -> PDFFont:
        if font.missing_glyphs:
            missing = "".join(chr(code) for code in font.missing_glyphs[:20])
            log.warning("font %s has no glyph for %r: left out of the document", font.name, missing)
        glyphs = {code: glyph for glyph, code in font.subset.items() if glyph is not None}
        subset = _templates[font.fontkey].program.subset(
            [glyphs[code].glyph_id if code in glyphs else None for code in range(max(glyphs) + 1)]
        )
        name = f"{_tag(subset)}+{font.name}"
        type0 = PDFFont(subtype="Type0", base_font=name, encoding="Identity-H")
        self._add_pdf_obj(type0, "fonts")
        cid_font = PDFFont(
            subtype="CIDFontType2",
            base_font=name,
            d_w=font.desc.missing_width,
            w=_widths({code: glyph.glyph_width for code, glyph in glyphs.items()}),
        )
        self._add_pdf_obj(cid_font, "fonts")
        type0.descendant_fonts = PDFArray([cid_font])
        type0.to_unicode = PDFContentStream(_to_unicode(glyphs), compress=True)
        self._add_pdf_obj(type0.to_unicode, "fonts")
        cid_font.c_i_d_system_info = _IDENTITY  # type: ignore[assignment]
        descriptor = font.desc
        descriptor.font_name = Name(name)
        self._add_pdf_obj(descriptor, "fonts")
        cid_font.font_descriptor = descriptor
        program = PDFFontStream(subset)
        self._add_pdf_obj(program, "fonts")
        descriptor.font_file2 = program  # type: ignore[attr-defined]
        return type0


# Adobe-Identity-0: the CIDs are plain glyph numbers. Written inline, not as an object of its own.
_IDENTITY = Raw("<</Registry (Adobe) /Ordering (Identity) /Supplement 0>>")


def _tag(data: bytes) -> str:
    """The six capital letters naming a font subset (PDF 32000-1 9.6.4), from its contents."""
    return "".join(chr(65 + b % 26) for b in hashlib.sha256(data).digest()[:6])


def _widths(widths: dict[int, int]) -> str:
    """The W array: runs of consecutive codes, `first [w1 w2 ...]`."""
    parts: list[str] = []
    run: list[int] = []
    start = previous = -2
    for code in sorted(widths):
        if code != previous + 1 and run:
            parts.append(f"{start} [{' '.join(map(str, run))}]")
            run = []
        if not run:
            start = code
        run.append(widths[code])
        previous = code
    if run:
        parts.append(f"{start} [{' '.join(map(str, run))}]")
    return f"[{' '.join(parts)}]"


def _to_unicode(glyphs: dict[int, Any]) -> bytes:
    """The ToUnicode CMap: which characters each code stands for, for search and copy."""
    entries = []
    for code, glyph in sorted(glyphs.items()):
        text = _utf16(glyph.unicode) if code and glyph.unicode else ""
        if text:
            entries.append(f"<{code:04X}> <{text}>\n")
    blocks = "".join(
        f"{len(entries[i : i + 100])} beginbfchar\n{''.join(entries[i : i + 100])}endbfchar\n"
        for i in range(0, len(entries), 100)
    )
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo\n<</Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{blocks}endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    ).encode("latin-1")


@cache  # bounded: one entry per glyph of our fonts at most
def _utf16(characters: tuple[Any, ...]) -> str:
    """The characters a glyph stands for, in UTF-16BE hex ("" unless all are code points)."""
    if not all(isinstance(u, int) for u in characters):
        return ""
    return "".join(chr(u) for u in characters).encode("utf-16-be").hex().upper()


# --- subsetting ------------------------------------------------------------------------


class _Program:
    """A TrueType font split into its tables once, to write subsets of it quickly.

    A subset keeps what a PDF viewer needs of an embedded CIDFontType2 (PDF
    32000-1 9.9; the tables iText also keeps): the outlines and metrics of
    the glyphs asked for, and the glyphs their composites are built from.
    """

    _KEEP = ("OS/2", "cvt ", "fpgm", "prep")  # copied as they are, when present

    def __init__(self, data: bytes) -> None:
        count = struct.unpack_from(">H", data, 4)[0]
        self.tables: dict[str, bytes] = {}
        for i in range(count):
            tag, _, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            self.tables[tag.decode("latin-1")] = data[offset : offset + length]
        self.count = glyphs = struct.unpack_from(">H", self.tables["maxp"], 4)[0]
        long_loca = struct.unpack_from(">h", self.tables["head"], 50)[0] == 1
        loca = array("I" if long_loca else "H")
        loca.frombytes(self.tables["loca"][: (glyphs + 1) * loca.itemsize])
        if not _BIG_ENDIAN:
            loca.byteswap()
        self.offsets = [offset * (1 if long_loca else 2) for offset in loca]
        self.glyf = self.tables["glyf"]
        metrics = struct.unpack_from(">H", self.tables["hhea"], 34)[0]
        hmtx = self.tables["hmtx"]
        self.advances = list(struct.unpack_from(f">{2 * metrics}H", hmtx)[0::2])
        self.bearings = list(struct.unpack_from(f">{2 * metrics}h", hmtx)[1::2])
        rest = glyphs - metrics  # a monospaced tail: the last advance, own side bearings
        self.advances += [self.advances[-1]] * rest
        self.bearings += list(struct.unpack_from(f">{rest}h", hmtx, 4 * metrics))
        # The tables every subset has as they are here, with their checksums.
        head = bytearray(self.tables["head"])
        struct.pack_into(">I", head, 8, 0)  # checkSumAdjustment, set per subset
        struct.pack_into(">h", head, 50, 1)  # long loca offsets
        post = bytearray(self.tables["post"][:32])
        struct.pack_into(">I", post, 0, 0x00030000)  # version 3: no glyph names
        self.fixed = {tag: self.tables[tag] for tag in self._KEEP if tag in self.tables}
        self.fixed |= {"head": bytes(head), "post": bytes(post)}
        self.fixed_sums = {tag: _checksum(data) for tag, data in self.fixed.items()}

    def subset(self, glyphs: list[int | None]) -> bytes:
        """A font whose glyph `i` is the original glyph `glyphs[i]` (None: an empty glyph).

        Glyph 0 is always the original .notdef; components of composite glyphs
        are added after the last one asked for.
        """
        # fpdf2 may name a glyph that is not one (its stand-in for a space a font lacks).
        order = [0] + [g if g is not None and g < self.count else None for g in glyphs[1:]]
        added: dict[int, int] = {}  # original id -> new id, for components
        outlines = []
        i = 0
        while i < len(order):  # `order` grows as composites pull in their components
            gid = order[i]
            outlines.append(b"" if gid is None else self._outline(gid, order, added))
            i += 1
        glyf = bytearray()
        loca = array("I")
        for outline in outlines:
            loca.append(len(glyf))
            glyf += outline
            glyf += b"\0" * (-len(outline) % 4)
        loca.append(len(glyf))
        if not _BIG_ENDIAN:
            loca.byteswap()
        hmtx = array("H")
        for gid in order:
            hmtx.append(0 if gid is None else self.advances[gid])
            hmtx.append(0 if gid is None else self.bearings[gid] & 0xFFFF)
        if not _BIG_ENDIAN:
            hmtx.byteswap()
        hhea = bytearray(self.tables["hhea"])
        struct.pack_into(">H", hhea, 34, len(order))
        maxp = bytearray(self.tables["maxp"])
        struct.pack_into(">H", maxp, 4, len(order))
        tables = self.fixed | {
            "glyf": bytes(glyf),
            "hhea": bytes(hhea),
            "hmtx": hmtx.tobytes(),
            "loca": loca.tobytes(),
            "maxp": bytes(maxp),
        }
        return _sfnt(tables, self.fixed_sums)

    def _outline(self, gid: int, order: list[int | None], added: dict[int, int]) -> bytes:
        data = self.glyf[self.offsets[gid] : self.offsets[gid + 1]]
        if len(data) < 10 or struct.unpack_from(">h", data, 0)[0] >= 0:
            return data
        # A composite glyph: point each component at its new id, adding the component if new.
        out = bytearray(data)
        pos = 10
        while True:
            flags, component = struct.unpack_from(">HH", out, pos)
            if component not in added:
                added[component] = len(order)
                order.append(component)
            struct.pack_into(">H", out, pos + 2, added[component])
            pos += 8 if flags & 0x0001 else 6  # arguments are words or bytes
            if flags & 0x0008:  # one scale
                pos += 2
            elif flags & 0x0040:  # x and y scales
                pos += 4
            elif flags & 0x0080:  # a 2x2 transformation
                pos += 8
            if not flags & 0x0020:  # no more components
                return bytes(out)


def _sfnt(tables: dict[str, bytes], sums: dict[str, int]) -> bytes:
    """A TrueType file of `tables`, with their checksums and head's checkSumAdjustment.

    `sums` has the checksums of some of the tables already.
    """
    tags = sorted(tables)
    count = len(tags)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(
        ">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, (count - power) * 16
    )
    offset = 12 + 16 * count
    directory = bytearray()
    body = bytearray()
    total = 0
    head_at = 0
    for tag in tags:
        data = tables[tag]
        checksum = sums[tag] if tag in sums else _checksum(data)
        total += checksum
        if tag == "head":
            head_at = offset + len(body)
        directory += struct.pack(
            ">4sIII", tag.encode("latin-1"), checksum, offset + len(body), len(data)
        )
        body += data
        body += b"\0" * (-len(data) % 4)
    # The whole file's checksum is the sum of its header's, its directory's and its tables'.
    total += _checksum(header + directory)
    font = bytearray(header + directory + body)
    struct.pack_into(">I", font, head_at + 8, (0xB1B0AFBA - total) & 0xFFFFFFFF)
    return bytes(font)


def _checksum(data: bytes | bytearray) -> int:
    """The sum of `data` as big-endian 32-bit words, zero-padded (the TrueType table checksum)."""
    if len(data) % 4:
        data = bytes(data) + b"\0" * (-len(data) % 4)
    words = array("I")
    words.frombytes(data)
    if not _BIG_ENDIAN:
        words.byteswap()
    return sum(words) & 0xFFFFFFFF
