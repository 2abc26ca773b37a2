"""Draw a `DocumentContent` as an A4 PDF: invoice, receipt or credit note.

Words come from `labels`, amounts and dates are formatted by Babel in the
document's locale. Identical content gives identical bytes (the creation date
is the issue date), so a document can be drawn again and compared.
"""

from __future__ import annotations

import logging
import os
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_percent, get_currency_symbol
from fpdf import FPDF
from fpdf.drawing import DeviceRGB
from fpdf.fonts import TTFFont
from fpdf.image_datastructures import RasterImageInfo
from fpdf.image_parsing import get_img_info

from bot.documents import fonts
from bot.documents.labels import LANGUAGES, all_labels, tax_name, text
from bot.documents.model import DocumentContent, DocumentKind, TaxTreatment
from bot.money import Money
from bot.translations import N_

log = logging.getLogger(__name__)

# Page geometry in mm (A4).
PAGE_W, PAGE_H = 210.0, 297.0
LEFT, RIGHT, TOP = 18.0, 18.0, 16.0
WIDTH = PAGE_W - LEFT - RIGHT
BODY_BOTTOM = PAGE_H - 24.0  # the footer lives below
FOOTER_Y = PAGE_H - 17.0

INK = DeviceRGB(31 / 255, 35 / 255, 40 / 255)
MUTED = DeviceRGB(96 / 255, 104 / 255, 114 / 255)
RULE = DeviceRGB(214 / 255, 219 / 255, 225 / 255)
WHITE = DeviceRGB(1, 1, 1)

# Lines table: the numeric columns after the description, right-aligned.
_NUMERIC_KEYS = (
    N_("document", "quantity"),
    N_("document", "net"),
    N_("document", "rate"),
    "tax",  # headed by the tax's own name (VAT, GST)
    N_("document", "amount"),
)
_MIN_COLUMN_W = 14.0
_MIN_DESCRIPTION_W = 60.0
_COLUMN_GAP = 4.0  # white space between numeric columns
_ROW_LINE_H = 4.4  # one line of 9 pt text in the table
_ROW_PAD = 1.5  # above and below the text of a row
_TOTALS_X = LEFT + WIDTH - 88.0
_HEADER_LEFT_W, _HEADER_RIGHT_W = 84.0, 86.0  # seller | title, number and dates
_BUYER_W = 110.0


def render(content: DocumentContent) -> bytes:
    """The PDF of `content`: A4, in its language and locale, the same bytes every time."""
    view = _View(content)
    japanese = _labels_need_japanese(view.language) or fonts.needs_japanese(view.all_text())
    pdf = _draw(view, japanese)
    return bytes(pdf.output(output_producer_class=fonts.Output))


def layouts() -> int:
    """How many documents this process has laid out: one per `render`, however many pages.

    Each layout is one fpdf2 document; the tests and `bench/documents.py` read
    this to show that a long invoice is not drawn twice to learn its page count.
    """
    return _layouts.value


class _Count:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()  # documents are rendered in threads too

    def add(self) -> None:
        with self._lock:
            self.value += 1


_layouts = _Count()


def _draw(view: _View, japanese: bool) -> _Pdf:
    content = view.c
    pdf = _Pdf(view, japanese=japanese)
    fonts.attach(pdf, japanese=japanese)
    pdf.set_creation_date(content.issued_at)
    pdf.set_title(f"{view.title} {content.number}")
    pdf.set_author(content.seller.name)
    pdf.set_creator("ChargeDesk Bot")
    pdf.set_lang(content.locale.replace("_", "-"))
    pdf.set_auto_page_break(False)
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.add_page()
    y = _header(pdf, view)
    y = _parties(pdf, view, y)
    # Everything below the parties is measured and placed before the first page ends, so its
    # footer already knows the page count ("Page 1 of 3"); then it is drawn where placed.
    table = _table(pdf, view)
    flow = _Flow(y)
    rows = [flow.row(row.height) for row in table.rows]
    flow.y += 3.0
    totals = _Totals(pdf, view)
    totals_at = flow.place(totals.height, advance=totals.advance)
    notes = _notes(pdf, view)
    notes_at = [flow.place(note.height, advance=note.height + 3.0) for note in notes]
    pdf.pages_total = flow.pages
    _draw_table(pdf, view, table, y, rows)
    totals.draw(pdf, view, totals_at)
    for note, at in zip(notes, notes_at, strict=True):
        note.draw(pdf, view, at)
    return pdf


# --- what is printed -----------------------------------------------------------------


class _View:
    """The content turned into printable strings, in the document's language and locale."""

    def __init__(self, content: DocumentContent) -> None:
        self.c = content
        self.language = content.language if content.language in LANGUAGES else "en"
        self.primary = _rgb(content.branding.primary_colour)
        self.accent = _rgb(content.branding.accent_colour)
        self.heading = _readable(self.primary)  # text in the brand colour
        self.tax = tax_name(self.language, content.tax_name)
        self.title = self.label(_title_key(content))
        self.locale = _locale(content.locale)  # parsed once: Babel parses a name on every call
        self._amounts: dict[int, str] = {}
        self._dates: dict[datetime, str] = {}

    def label(self, key: str, **fields: str) -> str:
        return text(self.language, key, **fields)

    def money(self, minor: int) -> str:
        # A document repeats its amounts (a line's gross is the total): Babel takes ~50 µs each.
        text = self._amounts.get(minor)
        if text is None:
            text = self._amounts[minor] = Money(minor=minor, currency=self.c.currency).format(
                self.c.locale
            )
        return text

    def date(self, value: datetime) -> str:
        text = self._dates.get(value)
        if text is None:
            text = self._dates[value] = format_date(value, format="long", locale=self.locale)
        return text

    def percent(self, rate: Decimal) -> str:
        return format_percent(rate / 100, locale=self.locale, decimal_quantization=False)

    def country(self, code: str | None) -> str | None:
        if not code:
            return None
        return _territories(self.c.locale).get(code.upper(), code)

    def tax_id_label(self) -> str:
        return self.label("gst_id" if self.c.tax_name.upper() == "GST" else "vat_id")

    def party_lines(self, seller: bool) -> list[str]:
        """Address, country (unless the address already ends with it), tax ID, email."""
        party = self.c.seller if seller else self.c.buyer
        lines = [_clean(line) for line in party.address if line.strip()]
        country = self.country(party.country)
        if country and not (lines and _mentions_country(lines[-1], country, party.country)):
            lines.append(country)
        if party.tax_id:
            lines.append(f"{self.tax_id_label()} {_clean(party.tax_id)}")
        if party.email:
            lines.append(_clean(party.email))
        if seller and self.c.branding.website:
            lines.append(_clean(self.c.branding.website))
        return lines

    def meta(self) -> list[tuple[str, str]]:
        """The label/value pairs under the title: dates, references, payment."""
        c = self.c
        rows = [(self.label("date"), self.date(c.issued_at))]
        if c.kind is DocumentKind.invoice and c.due_date and not c.paid_at:
            rows.append((self.label("due_date"), self.date(c.due_date)))
        if c.paid_at:
            key = (
                N_("document", "refunded_on")
                if c.kind is DocumentKind.credit_note
                else N_("document", "paid_on")
            )
            rows.append((self.label(key), self.date(c.paid_at)))
        if c.payment_method:
            rows.append((self.label("payment_method"), _clean(c.payment_method)))
        if c.reference:
            rows.append((self.label("reference"), _clean(c.reference)))
        return rows

    def related(self) -> str | None:
        c = self.c
        if c.kind is not DocumentKind.credit_note or not c.related_number:
            return None
        number = _clean(c.related_number)
        dated, undated = (
            (
                N_("document", "credit_note_for_receipt"),
                N_("document", "credit_note_for_receipt_undated"),
            )
            if c.related_kind is DocumentKind.receipt
            else (N_("document", "credit_note_for"), N_("document", "credit_note_for_undated"))
        )
        if c.related_issued_at is None:
            return self.label(undated, number=number)
        return self.label(dated, number=number, date=self.date(c.related_issued_at))

    def treatment(self) -> str | None:
        key = {
            TaxTreatment.reverse_charge: N_("document", "reverse_charge"),
            TaxTreatment.exempt: N_("document", "exempt"),
            TaxTreatment.outside_scope: N_("document", "outside_scope"),
        }.get(self.c.treatment)
        return self.label(key, tax=self.tax) if key else None

    def total_label(self) -> str:
        c = self.c
        if c.kind is DocumentKind.receipt:
            return self.label("total_paid")
        if c.kind is DocumentKind.credit_note:
            return self.label("total_credited")
        return self.label("total" if c.paid_at else "total_due")

    def footer_lines(self) -> list[str]:
        c = self.c
        legal = [c.seller.name, c.seller.registration]
        if c.seller.tax_id:
            legal.append(f"{self.tax_id_label()} {_clean(c.seller.tax_id)}")
        lines = [" · ".join(_clean(part) for part in legal if part)]
        if c.branding.footer:
            lines.insert(0, _clean(c.branding.footer))
        return lines

    def all_text(self) -> Iterator[str]:
        """Every string but the labels that may be printed, to know which fonts it needs."""
        c = self.c
        yield from (get_currency_symbol(c.currency, c.locale), self.date(c.issued_at), self.tax)
        for party in (c.seller, c.buyer):
            yield from (party.name, *party.address, party.email or "", party.tax_id or "")
            yield self.country(party.country) or ""
            yield party.registration or ""
        yield from (line.description for line in c.lines)
        for value in (c.reason, c.payment_method, c.reference, c.related_number, c.number):
            yield value or ""
        yield from (c.branding.footer or "", c.branding.website or "")


_TITLES = {
    DocumentKind.invoice: N_("document", "invoice"),
    DocumentKind.receipt: N_("document", "receipt"),
    DocumentKind.credit_note: N_("document", "credit_note"),
}


def _title_key(content: DocumentContent) -> str:
    if content.kind is DocumentKind.invoice and content.tax_name.upper() == "GST":
        # AU, NZ and SG require the words "Tax invoice" on an invoice with GST.
        return N_("document", "tax_invoice")
    return _TITLES[content.kind]


@lru_cache(maxsize=len(LANGUAGES) + 1)
def _labels_need_japanese(language: str) -> bool:
    """Do the words of `language` need the Japanese font? (Asked once per language.)"""
    return fonts.needs_japanese(all_labels(language))


@lru_cache(maxsize=64)
def _territories(locale: str) -> dict[str, str]:
    return dict(_locale(locale).territories)


@lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    return Locale.parse(name)


def _mentions_country(line: str, name: str, code: str | None) -> bool:
    last = line.strip().casefold()
    return last.endswith(name.casefold()) or (code is not None and last == code.casefold())


def _clean(value: str) -> str:
    """One line of text as a PDF font can draw it: composed accents, no control characters."""
    value = unicodedata.normalize("NFC", value)
    return "".join(ch if ch.isprintable() else " " for ch in value).strip()


@lru_cache(maxsize=64)
def _rgb(colour: str) -> DeviceRGB:
    value = colour.lstrip("#")
    return DeviceRGB(*(int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)))


def _readable(colour: DeviceRGB) -> DeviceRGB:
    """`colour`, darkened if too light to read as text on white (a yellow brand, say)."""
    if _luminance(colour) <= 0.5:
        return colour
    factor = 0.5 / _luminance(colour)
    return DeviceRGB(colour.r * factor, colour.g * factor, colour.b * factor)


def _luminance(colour: DeviceRGB) -> float:
    return 0.299 * colour.r + 0.587 * colour.g + 0.114 * colour.b


def _on(colour: DeviceRGB) -> DeviceRGB:
    """Text colour readable on a background of `colour`."""
    return INK if _luminance(colour) > 0.63 else WHITE


# --- drawing ---------------------------------------------------------------------------


class _Pdf(FPDF):
    """An A4 page with the running header (after page 1) and the footer on every page."""

    def __init__(self, view: _View, *, japanese: bool) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        _layouts.add()
        self.view = view
        self.japanese = japanese
        self.pages_total = 1  # set once the blocks are placed, before page 1 ends
        self.text_style: tuple[float, bool, DeviceRGB] | None = None  # see _font
        # No "{nb}" placeholder: it would also replace "{nb}" typed in a customer's name.
        self.alias_nb_pages(None)  # type: ignore[arg-type]

    def header(self) -> None:
        if self.page_no() == 1:
            return
        view = self.view
        _font(self, 8, colour=MUTED)
        _put(self, LEFT, 9.0, WIDTH, f"{view.title} {view.c.number}")
        _put(self, LEFT, 9.0, WIDTH, _clean(view.c.seller.name), align="R")
        self.text_style = None  # fpdf2 puts back the font and colours it had before

    def footer(self) -> None:
        view = self.view
        self.set_draw_color(RULE)
        self.set_line_width(0.2)
        self.line(LEFT, FOOTER_Y - 2.0, LEFT + WIDTH, FOOTER_Y - 2.0)
        _font(self, 7.5, colour=MUTED)
        page = view.label("page", n=str(self.page_no()), total=str(self.pages_total))
        page_w = 30.0
        y = FOOTER_Y
        for line in view.footer_lines():
            for part in _wrap(self, line, WIDTH - page_w - 4.0)[:2]:
                _put(self, LEFT, y, WIDTH - page_w - 4.0, part)
                y += 3.6
        _put(self, LEFT + WIDTH - page_w, FOOTER_Y, page_w, page, align="R")
        self.text_style = None  # fpdf2 puts back the font and colours it had before


def _font(pdf: _Pdf, size: float, bold: bool = False, colour: DeviceRGB = INK) -> None:
    style = (size, bold, colour)
    previous = pdf.text_style
    if style == previous:
        return
    pdf.text_style = style
    # Only what changed: fpdf2 would ignore the rest, after checking it (30 times a receipt).
    if previous is None or previous[:2] != style[:2]:
        pdf.set_font(fonts.FAMILY, "B" if bold else "", size)
    if previous is None or previous[2] != colour:
        # Text in the fill colour: fpdf2 then sets the colour once, not around every line of text.
        pdf.set_fill_color(colour)
        pdf.set_text_color(colour)


def _fill(pdf: _Pdf, colour: DeviceRGB) -> None:
    """The colour of the next filled shape (the next `_font` sets the text colour again)."""
    pdf.set_fill_color(colour)
    pdf.text_style = None


def _put(
    pdf: _Pdf, x: float, y: float, w: float, value: str, align: str = "L", h: float = 4.0
) -> None:
    """One line of text in a box of width `w` whose top is at `y`, placed as `FPDF.cell` would.

    `FPDF.text` draws it at a quarter of the cost of `cell`; Japanese characters
    are drawn in the Japanese font.
    """
    if align == "R":
        x += w - pdf.c_margin - _width(pdf, value)
    elif align == "C":
        x += (w - _width(pdf, value)) / 2
    else:
        x += pdf.c_margin
    baseline = y + 0.5 * h + 0.3 * pdf.font_size
    if not pdf.japanese:
        pdf.text(x, baseline, value)
        return
    family, style, size = pdf.font_family, pdf.font_style, pdf.font_size_pt
    for run_family, run in fonts.runs(value):
        if run_family == family:
            pdf.set_font(family, style, size)
            pdf.text(x, baseline, run)
        else:
            pdf.set_font(run_family, "", size)
            if "B" in style:
                _faux_bold(pdf, x, baseline, run)
            else:
                pdf.text(x, baseline, run)
        x += _width(pdf, run)
    pdf.set_font(family, style, size)


def _faux_bold(pdf: _Pdf, x: float, baseline: float, value: str) -> None:
    """Text drawn filled and outlined, a little heavier: the Japanese font has no bold."""
    colour = pdf.text_color
    with pdf.local_context(text_mode="FILL_STROKE", line_width=0.012 * pdf.font_size_pt):
        pdf.set_draw_color(colour)
        pdf.text(x, baseline, value)
    pdf.current_font_is_set_on_page = False  # it was set inside the q/Q pair just closed


_Measure = tuple[float, bool]  # a font size in points and bold, to measure text not yet drawn


def _width(pdf: _Pdf, value: str, font: _Measure | None = None) -> float:
    """The width of `value` (Japanese in the Japanese font), no char spacing.

    In the current font, or in `font` without making it current (setting a
    font writes to the page).
    """
    if font is None:
        size, family, style = pdf.font_size_pt, pdf.font_family, pdf.font_style
    else:
        size, family, style = font[0], fonts.FAMILY, "B" if font[1] else ""
    if not pdf.japanese:
        return _font_of(pdf, family + style).get_text_width(value, size, None)[1] / pdf.k
    total = 0.0
    for run_family, run in fonts.runs(value):
        key = run_family + style if run_family == family else run_family
        total += _font_of(pdf, key).get_text_width(run, size, None)[1]
    return total / pdf.k


def _font_of(pdf: FPDF, key: str) -> TTFFont:
    font = pdf.fonts[key]
    assert isinstance(font, TTFFont)
    return font


def _wrap(pdf: _Pdf, value: str, width: float, font: _Measure | None = None) -> list[str]:
    """`value` broken into lines no wider than `width` in the current font, or in `font`.

    Breaks at spaces; a word wider than a line (an ID, or Japanese, written
    without spaces) is broken where `_breakable` allows, else anywhere.
    """
    width -= 2 * pdf.c_margin
    if _width(pdf, value, font) <= width:
        return [value]
    lines: list[str] = []
    current = ""
    for word in value.split(" "):
        candidate = f"{current} {word}" if current else word
        if _width(pdf, candidate, font) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while _width(pdf, current, font) > width:
            cut = _cut(pdf, current, width, font)
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines


def _cut(pdf: _Pdf, word: str, width: float, font: _Measure | None = None) -> int:
    """How many characters of `word` go on this line: as many as fit, back to a break."""
    fits = 1
    while fits < len(word) and _width(pdf, word[: fits + 1], font) <= width:
        fits += 1
    return next((i for i in range(fits, 0, -1) if _breakable(word, i)), fits)


# Japanese line breaking (kinsoku): no line starts with closing punctuation or a
# small kana mark, and none ends with an opening bracket.
_NO_LINE_START = frozenset(
    "、。，．・：；？！）」』】〕〉》ー々ゝゞヽヾぁぃぅぇぉっゃゅょァィゥェォッャュョ,.:;?!)]"
)
_NO_LINE_END = frozenset("（「『【〔〈《([")


def _breakable(word: str, i: int) -> bool:
    """May a line end between `word[i - 1]` and `word[i]`?"""
    before, after = word[i - 1], word[i]
    if after in _NO_LINE_START or before in _NO_LINE_END:
        return False
    # Between two Japanese characters, or one and anything else: yes; inside a Latin
    # word, an ID or a number: only after a hyphen or a slash.
    return before >= "\u2e80" or after >= "\u2e80" or before in "-/"


def _header(pdf: _Pdf, view: _View) -> float:
    """Logo and seller on the left; title, number, paid badge and dates on the right."""
    c = view.c
    y = TOP
    logo_bottom = _logo(pdf, c.branding.logo, y) if c.branding.logo else None
    if logo_bottom is not None:  # the logo, the seller's name under it
        y = logo_bottom + 4.0
        _font(pdf, 10, bold=True)
        line_h, gap = 5.0, 0.0
    else:  # the seller's name is the letterhead
        _font(pdf, 15, bold=True, colour=view.heading)
        line_h, gap = 6.5, 2.0
    for line in _wrap(pdf, _clean(c.seller.name), _HEADER_LEFT_W)[:2]:
        _put(pdf, LEFT, y, _HEADER_LEFT_W, line, h=line_h)
        y += line_h
    y += gap
    _font(pdf, 8.5, colour=MUTED)
    for line in view.party_lines(seller=True):
        for part in _wrap(pdf, line, _HEADER_LEFT_W):
            _put(pdf, LEFT, y, _HEADER_LEFT_W, part)
            y += 4.0
    left_bottom = y

    right_w = _HEADER_RIGHT_W
    x = LEFT + WIDTH - right_w
    _font(pdf, 22, bold=True, colour=view.heading)
    title_w = _width(pdf, view.title) + 2 * pdf.c_margin
    if title_w > right_w:  # "Potwierdzenie płatności" at 22 pt is wider than the column
        _font(pdf, max(14.0, 22 * right_w / title_w), bold=True, colour=view.heading)
    _put(pdf, x, TOP - 1.0, right_w, view.title, align="R", h=10.0)
    _font(pdf, 11, bold=True)
    _put(pdf, x, TOP + 10.0, right_w, c.number, align="R", h=5.5)
    y = TOP + 17.5
    if c.paid_at and c.kind is not DocumentKind.credit_note:
        y = _badge(pdf, view, view.label("paid").upper(), x + right_w - pdf.c_margin, y) + 3.0
    meta = view.meta()
    _font(pdf, 8.5, colour=MUTED)
    label_w = min(40.0, max(_width(pdf, label) for label, _ in meta) + 6.0)
    for label, value in meta:
        _font(pdf, 8.5, colour=MUTED)
        _put(pdf, x, y, label_w, label)
        _font(pdf, 8.5)
        for line in _wrap(pdf, value, right_w - label_w):
            _put(pdf, x + label_w, y, right_w - label_w, line, align="R")
            y += 4.0
        y += 0.6
    return max(left_bottom, y) + 5.0


def _logo(pdf: FPDF, path: str, y: float) -> float | None:
    """The logo at most 60 x 16 mm, its aspect kept; where it ends (None: no logo file)."""
    try:
        info = _reuse_image(pdf, path)
    except OSError as exc:  # configured at start, gone since: the document still goes out
        log.warning("logo %s not printed: %s", path, exc)
        return None
    width, height = float(info["w"]), float(info["h"])  # type: ignore[arg-type]
    h = min(16.0, 60.0 * height / width)
    w = h * width / height
    pdf.image(path, x=LEFT + pdf.c_margin, y=y, w=w, h=h)  # flush with the text below
    return y + h


def _reuse_image(pdf: FPDF, path: str) -> RasterImageInfo:
    """Give `pdf` the image at `path` already decoded, as `FPDF.image` would have stored it.

    fpdf2 decodes and recompresses an image for every document (4 ms and more
    for a logo); it has no public way to share that work across documents, so
    this puts a copy of a decoded image in the document's image cache as
    fpdf2's `preload_image` does. `test_logo_is_decoded_once_for_many_documents` checks it.
    """
    stat = os.stat(path)
    decoded = _decoded_image(path, stat.st_mtime_ns, stat.st_size)
    cache = pdf.image_cache
    info = cache.images.get(path)
    if info is None:
        info = RasterImageInfo(decoded)
        info["i"], info["usages"], info["iccp_i"] = len(cache.images) + 1, 0, None
        profile = decoded.get("iccp")
        if profile is not None:
            info["iccp_i"] = cache.icc_profiles.setdefault(profile, len(cache.icc_profiles))
            info["iccp"] = None
        cache.images[path] = info
    assert isinstance(info, RasterImageInfo)
    return info


@lru_cache(maxsize=16)
def _decoded_image(path: str, mtime_ns: int, size: int) -> RasterImageInfo:
    """An image file as fpdf2 embeds it, decoded once per version of the file."""
    return get_img_info(path)


def _badge(pdf: _Pdf, view: _View, label: str, right: float, y: float) -> float:
    """A stamp-like outlined label, right-aligned at `right`; returns its bottom."""
    _font(pdf, 9, bold=True, colour=view.heading)
    spacing = 0.6
    pdf.set_char_spacing(spacing)
    text_w = _width(pdf, label) + spacing * (len(label) - 1)
    w, h, pad = text_w + 8.0, 6.5, 4.0
    pdf.set_draw_color(view.heading)
    pdf.set_line_width(0.5)
    pdf.rect(right - w, y, w, h, style="D", round_corners=True, corner_radius=1.2)
    _put(pdf, right - w + pad - pdf.c_margin, y + 0.3, text_w + 2 * pdf.c_margin, label, h=h - 0.6)
    pdf.set_char_spacing(0)
    return y + h


def _parties(pdf: _Pdf, view: _View, y: float) -> float:
    """The rule under the header, then whom the document is for."""
    c = view.c
    pdf.set_draw_color(view.primary)
    pdf.set_line_width(0.6)
    pdf.line(LEFT, y, LEFT + WIDTH, y)
    y += 5.0
    _font(pdf, 7.5, bold=True, colour=view.heading)
    _put(pdf, LEFT, y, _BUYER_W, view.label("bill_to").upper())
    y += 4.5
    _font(pdf, 10, bold=True)
    for line in _wrap(pdf, _clean(c.buyer.name), _BUYER_W)[:3]:
        _put(pdf, LEFT, y, _BUYER_W, line, h=5.0)
        y += 5.0
    _font(pdf, 8.5, colour=MUTED)
    for line in view.party_lines(seller=False):
        for part in _wrap(pdf, line, _BUYER_W):
            _put(pdf, LEFT, y, _BUYER_W, part)
            y += 4.0
    related = view.related()
    if related:
        y += 3.0
        _font(pdf, 9.5, bold=True)
        for line in _wrap(pdf, related, WIDTH):
            _put(pdf, LEFT, y, WIDTH, line, h=5.0)
            y += 5.0
    return y + 6.0


@dataclass(frozen=True)
class _Row:
    description: list[str]
    cells: Sequence[str]

    @property
    def height(self) -> float:
        return len(self.description) * _ROW_LINE_H + 2 * _ROW_PAD


@dataclass(frozen=True)
class _Columns:
    titles: Sequence[str]  # description first, then the numeric columns
    widths: Sequence[float]


@dataclass(frozen=True)
class _Table:
    columns: _Columns
    rows: Sequence[_Row]


@dataclass(frozen=True)
class _Placed:
    """Where a block goes: on a new page or not, and the top of it."""

    new_page: bool
    y: float


class _Flow:
    """Blocks stacked down the pages from `y`, counting the pages they take.

    Only places: nothing is drawn, so the page count is known before the
    first page's footer is written.
    """

    def __init__(self, y: float) -> None:
        self.y = y + _TABLE_HEADER_H  # the lines table starts with its header
        self.pages = 1

    def place(self, need: float, advance: float | None = None, top: float = TOP + 2.0) -> _Placed:
        """A block needing `need` mm: here, or at `top` of a new page if it does not fit."""
        new_page = self.y + need > BODY_BOTTOM
        if new_page:
            self.pages += 1
            self.y = top
        placed = _Placed(new_page, self.y)
        self.y += need if advance is None else advance
        return placed

    def row(self, height: float) -> _Placed:
        """A row of the lines table: on a new page, under the table header repeated."""
        return self.place(height, top=TOP + 2.0 + _TABLE_HEADER_H)


def _table(pdf: _Pdf, view: _View) -> _Table:
    """The lines table's columns and rows, wrapped to fit them."""
    cells = [
        (
            str(line.quantity),
            view.money(line.net),
            view.percent(line.rate),
            view.money(line.tax),
            view.money(line.gross),
        )
        for line in view.c.lines
    ]
    columns = _columns(pdf, view, cells)
    _font(pdf, 9)
    rows = [
        _Row(_wrap(pdf, _clean(line.description) or "—", columns.widths[0]), values)
        for line, values in zip(view.c.lines, cells, strict=True)
    ]
    return _Table(columns, rows)


def _draw_table(pdf: _Pdf, view: _View, table: _Table, y: float, placed: Sequence[_Placed]) -> None:
    """The lines table at `y`; rows placed on a new page continue under the same header."""
    columns = table.columns
    _table_header(pdf, view, columns, y)
    for row, at in zip(table.rows, placed, strict=True):
        if at.new_page:
            pdf.add_page()
            _table_header(pdf, view, columns, TOP + 2.0)
        _font(pdf, 9)
        top = at.y + _ROW_PAD
        for i, line in enumerate(row.description):
            _put(pdf, LEFT, top + i * _ROW_LINE_H, columns.widths[0], line, h=_ROW_LINE_H)
        x = LEFT + columns.widths[0]
        for w, value in zip(columns.widths[1:], row.cells, strict=True):
            _put(pdf, x, top, w, value, align="R", h=_ROW_LINE_H)
            x += w
        pdf.set_draw_color(RULE)
        pdf.set_line_width(0.2)
        pdf.line(LEFT, at.y + row.height, LEFT + WIDTH, at.y + row.height)


def _columns(pdf: _Pdf, view: _View, cells: Sequence[Sequence[str]]) -> _Columns:
    """Numeric columns as wide as their widest entry; the description gets the rest."""
    titles = [view.label("description")] + [
        view.tax if key == "tax" else view.label(key) for key in _NUMERIC_KEYS
    ]
    _font(pdf, 8, bold=True)
    widths = [_width(pdf, title) for title in titles[1:]]
    _font(pdf, 9)
    for values in cells:
        widths = [max(w, _width(pdf, v)) for w, v in zip(widths, values, strict=True)]
    numeric = [max(_MIN_COLUMN_W, w + 2 * pdf.c_margin + _COLUMN_GAP) for w in widths]
    description = max(_MIN_DESCRIPTION_W, WIDTH - sum(numeric))
    # Amounts too wide to leave the description its minimum: every numeric column gives way.
    scale = min(1.0, (WIDTH - description) / sum(numeric))
    return _Columns(titles, [description] + [w * scale for w in numeric])


_TABLE_HEADER_H = 7.0


def _table_header(pdf: _Pdf, view: _View, columns: _Columns, y: float) -> float:
    h = _TABLE_HEADER_H
    _fill(pdf, view.primary)
    pdf.rect(LEFT, y, WIDTH, h, style="F")
    _font(pdf, 8, bold=True, colour=_on(view.primary))
    x = LEFT
    for i, (title, w) in enumerate(zip(columns.titles, columns.widths, strict=True)):
        _put(pdf, x, y, w, title, align="R" if i else "L", h=h)
        x += w
    return y + h


class _Totals:
    """Net, tax per rate and the total, right-aligned under the table."""

    _X, _W = _TOTALS_X, LEFT + WIDTH - _TOTALS_X
    _AMOUNT_W = 30.0
    _LINE_H = 5.2
    _TOTAL_H = 9.0

    def __init__(self, pdf: _Pdf, view: _View) -> None:
        c = view.c
        label_w = self._W - self._AMOUNT_W
        muted = (9.0, False)  # the labels' font: measured, not set (it is set when drawn)
        self.rows = [(_wrap(pdf, view.label("subtotal"), label_w, muted), view.money(c.net))]
        for tax in c.taxes:
            label = view.label(
                "tax_on", tax=view.tax, rate=view.percent(tax.rate), net=view.money(tax.net)
            )
            self.rows.append((_wrap(pdf, label, label_w, muted), view.money(tax.tax)))
        lines = sum(len(label) for label, _ in self.rows) * self._LINE_H
        self.height = lines + 12.0  # what must fit on the page
        self.advance = lines + 1.5 + self._TOTAL_H + 7.0  # down to the notes

    def draw(self, pdf: _Pdf, view: _View, at: _Placed) -> None:
        x, w, amount_w, line_h = self._X, self._W, self._AMOUNT_W, self._LINE_H
        _font(pdf, 9, colour=MUTED)
        if at.new_page:
            pdf.add_page()
        y = at.y
        for label, amount in self.rows:
            _font(pdf, 9, colour=MUTED)
            for i, line in enumerate(label):
                _put(pdf, x, y + i * line_h, w - amount_w, line, h=line_h)
            _font(pdf, 9)
            _put(pdf, x + w - amount_w, y, amount_w, amount, align="R", h=line_h)
            y += len(label) * line_h
        y += 1.5
        h = self._TOTAL_H
        _fill(pdf, view.accent)
        pdf.rect(x, y, w, h, style="F")
        _font(pdf, 11, bold=True, colour=view.heading)
        _put(pdf, x, y, w - amount_w - 2.0, view.total_label(), h=h)
        _put(
            pdf, x + w - amount_w - 2.0, y, amount_w + 2.0, view.money(view.c.gross), align="R", h=h
        )


@dataclass(frozen=True)
class _Note:
    """A paragraph under the totals, wrapped; a boxed one has a tinted box and a brand bar."""

    lines: list[str]
    bold: bool
    boxed: bool

    @property
    def height(self) -> float:
        return len(self.lines) * 4.2 + (4.0 if self.boxed else 0.0)

    def draw(self, pdf: _Pdf, view: _View, at: _Placed) -> None:
        _font(pdf, 8.5, bold=self.bold)
        if at.new_page:
            pdf.add_page()
        y = at.y
        if self.boxed:
            _fill(pdf, view.accent)
            pdf.rect(LEFT, y, WIDTH, self.height, style="F")
            _fill(pdf, view.primary)
            pdf.rect(LEFT, y, 1.2, self.height, style="F")
            y += 2.0
        _font(pdf, 8.5, bold=self.bold)
        for line in self.lines:
            _put(pdf, LEFT + (4.0 if self.boxed else 0.0), y, WIDTH - 6.0, line, h=4.2)
            y += 4.2


def _notes(pdf: _Pdf, view: _View) -> list[_Note]:
    """Tax treatment, the credit note's reason, payment terms, thanks."""
    c = view.c
    blocks: list[tuple[str, bool, bool]] = []  # text, bold, boxed
    treatment = view.treatment()
    if treatment:
        blocks.append((treatment, False, True))
    if c.kind is DocumentKind.credit_note and c.reason:
        blocks.append((view.label("reason_is", reason=_clean(c.reason)), False, False))
    if c.kind is DocumentKind.invoice and not c.paid_at and c.due_date:
        blocks.append((view.label("payment_due", date=view.date(c.due_date)), True, False))
    if c.kind is not DocumentKind.credit_note:
        blocks.append((view.label("thank_you"), False, False))
    return [
        _Note(_wrap(pdf, value, WIDTH - (6.0 if boxed else 0.0), (8.5, bold)), bold, boxed)
        for value, bold, boxed in blocks
    ]
