"""The PDF renderer: words, amounts and dates per locale, fonts, pages, and how it looks."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from array import array
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from bot.documents import fonts
from bot.documents.labels import LANGUAGES, tax_name, text
from bot.documents.model import Branding, DocumentContent, DocumentKind, Party, TaxTreatment
from bot.documents.render import layouts, render
from bot.money import Money
from bot.translations import messages
from tests.documents.conftest import BRANDING, BUYER, make_document, pages_text, pdf_text

# The document labels of each language, as the catalogs (bot/locales) hold them.
LABELS = {language: messages(language, "document") for language in LANGUAGES}

JAPANESE_BUYER = Party(
    name="山田太郎",
    address=("東京都千代田区丸の内1-1-1", "〒100-0005"),
    country="JP",
    email="taro@example.jp",
)


def embedded_fonts(pdf: bytes) -> set[str]:
    """The base font names of every font on every page, subset tags removed."""
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]).split("+", 1)[-1])
    return names


# --- words, amounts and dates ------------------------------------------------------------


def test_receipt_shows_number_amounts_and_dates_in_english() -> None:
    words = pdf_text(render(make_document()))

    for expected in (
        "Receipt",
        "RCT-2025-000042",
        "Date of issue 12 March 2025",
        "Paid on 12 March 2025",
        "Visa •••• 4242",
        "Pro plan, monthly 1 €100.00 19% €19.00 €119.00",
        "Subtotal €100.00",
        "VAT 19% on €100.00 €19.00",
        "Total paid €119.00",
        "Page 1 of 1",
    ):
        assert expected in words


def test_invoice_amounts_and_dates_are_formatted_in_german() -> None:
    content = make_document(
        DocumentKind.invoice,
        items=[("Pro-Tarif", 1, 11900), ("Zusätzliche Nutzer", 3, 3570)],
        locale="de_DE",
        language="de",
    )

    words = pdf_text(render(content))

    assert "Rechnung INV-2025-000042" in words
    assert "Ausstellungsdatum 12. März 2025" in words
    assert "Fällig am 26. März 2025" in words
    assert "Pro-Tarif 1 100,00 € 19 % 19,00 € 119,00 €" in words
    assert "USt. 19 % auf 130,00 € 24,70 €" in words
    assert "Zu zahlender Betrag 154,70 €" in words
    assert "Bitte zahlen Sie bis zum 26. März 2025." in words


def test_yen_have_no_decimals_in_japanese() -> None:
    content = make_document(
        locale="ja_JP",
        language="ja",
        currency="JPY",
        rate="10",
        items=[("プロプラン（月額）", 1, 5500)],
        buyer=JAPANESE_BUYER,
    )

    words = pdf_text(render(content))

    assert Money(minor=5500, currency="JPY").format("ja_JP") == "￥5,500"
    assert "領収書" in words
    assert "お支払合計 ￥5,500" in words
    assert "消費税（10%対象 ￥5,000） ￥500" in words
    assert "2025年3月12日" in words


def test_kuwaiti_dinars_have_three_decimals() -> None:
    content = make_document(currency="KWD", rate="0", items=[("Annual licence", 1, 1250)])

    words = pdf_text(render(content))

    assert "Total paid KWD1.250" in words


def test_each_rate_gets_its_own_tax_line() -> None:
    content = make_document(
        DocumentKind.invoice,
        items=[("Software", 1, 11900), ("E-book", 1, 2140, "7")],
    )

    words = pdf_text(render(content))

    assert "VAT 19% on €100.00 €19.00" in words
    assert "VAT 7% on €20.00 €1.40" in words
    assert "Total due €140.40" in words


REVERSE_CHARGE = {
    "en": "Reverse charge: VAT to be accounted for by the recipient (Article 196, Directive 2006/112/EC)",
    "de": "Steuerschuldnerschaft des Leistungsempfängers",
    "fr": "Autoliquidation : la TVA est due par le preneur",
    "it": "Inversione contabile",
    "pl": "Odwrotne obciążenie",
    "ja": "リバースチャージ",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_reverse_charge_wording_in_each_language(language: str) -> None:
    content = make_document(
        DocumentKind.invoice,
        treatment=TaxTreatment.reverse_charge,
        language=language,
        locale={"en": "en_GB", "ja": "ja_JP"}.get(language, f"{language}_{language.upper()}"),
    )

    words = pdf_text(render(content))

    assert REVERSE_CHARGE[language] in words
    assert "196" in words


def test_exempt_and_outside_scope_say_why_there_is_no_tax() -> None:
    exempt = pdf_text(render(make_document(treatment=TaxTreatment.exempt)))
    outside = pdf_text(render(make_document(treatment=TaxTreatment.outside_scope, tax_name="GST")))

    assert "the customer is exempt from VAT, so no VAT is charged" in exempt
    assert "Outside the scope of GST: no GST is charged." in outside


def test_gst_invoice_is_titled_tax_invoice() -> None:
    content = make_document(
        DocumentKind.invoice, tax_name="GST", locale="en_AU", currency="AUD", rate="10"
    )

    words = pdf_text(render(content))

    assert words.count("Tax invoice INV-2025-000042") == 1
    assert "GST 10% on $108.18 $10.82" in words


def test_credit_note_names_the_corrected_invoice_and_the_reason() -> None:
    words = pdf_text(render(make_document(DocumentKind.credit_note)))

    assert "Credit note CN-2025-000042" in words
    assert "Credit note for invoice INV-2025-000041 of 28 February 2025" in words
    assert "Reason: Duplicate charge" in words
    assert "Total credited €119.00" in words


def test_polish_characters_survive_extraction() -> None:
    content = make_document(
        locale="pl_PL",
        language="pl",
        currency="PLN",
        rate="23",
        items=[("Usługa: ąęłńóśźż ĄĘŁŃÓŚŹŻ", 1, 12300)],
        buyer=Party(name="Zażółć Gęślą Jaźń sp. z o.o.", country="PL"),
    )

    words = pdf_text(render(content))

    assert "Zażółć Gęślą Jaźń sp. z o.o." in words
    assert "Usługa: ąęłńóśźż ĄĘŁŃÓŚŹŻ" in words
    assert "Potwierdzenie płatności" in words
    assert "Zapłacono łącznie 123,00 zł" in words


def test_japanese_name_on_an_english_receipt_is_printed_in_the_japanese_font() -> None:
    pdf = render(make_document(buyer=JAPANESE_BUYER))

    assert "山田太郎 東京都千代田区丸の内1-1-1 〒100-0005 Japan" in pdf_text(pdf)
    assert embedded_fonts(pdf) == {"NotoSans", "NotoSansBold", "ChargeDeskGothicJP"}


def test_documents_without_japanese_embed_only_noto_sans() -> None:
    assert embedded_fonts(render(make_document())) == {"NotoSans", "NotoSansBold"}


def test_customer_text_is_printed_as_typed() -> None:
    buyer = Party(name="{nb} & Co. **bold** ~~x~~", address=("Line\twith tab",), country="GB")

    words = pdf_text(render(make_document(buyer=buyer)))

    assert "{nb} & Co. **bold** ~~x~~" in words
    assert "Line with tab" in words


def test_metadata_names_the_document_its_seller_and_language() -> None:
    reader = PdfReader(io.BytesIO(render(make_document(locale="de_DE", language="de"))))

    assert reader.metadata is not None
    assert reader.metadata.title == "Quittung RCT-2025-000042"
    assert reader.metadata.author == "ChargeDesk Demo GmbH"
    assert reader.trailer["/Root"]["/Lang"] == "de-DE"
    assert reader.metadata.creation_date == datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


# --- pages -------------------------------------------------------------------------------


def long_invoice(lines: int = 70) -> bytes:
    items = [
        (f"Line {i:02d}: API calls in region eu-west-{i % 3}, billed per thousand", 1, 1000 + i)
        for i in range(lines)
    ]
    return render(make_document(DocumentKind.invoice, items=items))


def test_long_invoice_flows_onto_further_pages_with_the_table_header_repeated() -> None:
    pages = pages_text(long_invoice())

    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        if "Line " in page:
            assert "Description Qty Net Rate VAT Amount" in page
    for number in range(2, len(pages) + 1):
        assert "Invoice INV-2025-000042" in pages[number - 1]
    everything = " ".join(pages)
    for i in range(70):  # every line once, none lost at a page break
        assert everything.count(f"Line {i:02d}:") == 1
    assert "Total due" in pages[-1]


def test_a_three_page_invoice_is_laid_out_once_and_knows_its_page_count() -> None:
    before = layouts()
    pdf = long_invoice(70)
    laid_out = layouts() - before

    pages = pages_text(pdf)
    assert len(pages) == 3
    assert laid_out == 1  # one fpdf2 document: not drawn a first time to count its pages
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of 3" in page


@pytest.mark.parametrize(
    ("lines", "last_page_starts_with"),
    [
        (51, "Thank you for your business."),
        (54, "Subtotal"),
        (57, "Description Qty Net Rate VAT Amount Line 56:"),
    ],
    ids=["only-the-thanks", "the-totals", "the-last-row"],
)
def test_footers_count_the_page_that_only_the_totals_or_notes_moved_onto(
    lines: int, last_page_starts_with: str
) -> None:
    pages = pages_text(long_invoice(lines))

    assert len(pages) == 3
    header = "Invoice INV-2025-000042 ChargeDesk Demo GmbH "  # running header of further pages
    assert pages[-1].startswith(header + last_page_starts_with)
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of 3" in page


def test_long_descriptions_wrap_inside_their_column() -> None:
    from fpdf import FPDF

    description = "Priority support add-on with a long description that keeps going " * 3
    description = description.strip()
    pdf = render(make_document(items=[(description, 7, 11900)]))
    placed: list[tuple[str, float, float]] = []  # text, x, y in points

    def visit(value: str, cm: list[float], tm: list[float], *_: object) -> None:
        if value.strip():
            placed.append((value, tm[4], tm[5]))

    PdfReader(io.BytesIO(pdf)).pages[0].extract_text(visitor_text=visit)
    lines = [(t, x, y) for t, x, y in placed if t in description]
    (quantity_x,) = [x for t, x, _ in placed if t == "7"]
    measure = FPDF(unit="pt")
    fonts.attach(measure)
    measure.set_font(fonts.FAMILY, size=9)

    assert len(lines) >= 3
    assert " ".join(t for t, _, _ in lines) == description
    assert len({x for _, x, _ in lines}) == 1  # one left edge
    assert [y for _, _, y in lines] == sorted((y for _, _, y in lines), reverse=True)
    for line, x, _ in lines:
        assert x + measure.get_string_width(line) < quantity_x  # clear of the next column


# --- determinism and the font cache ------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        make_document(),
        make_document(buyer=JAPANESE_BUYER, locale="ja_JP", language="ja"),
        make_document(DocumentKind.credit_note, treatment=TaxTreatment.reverse_charge),
    ],
    ids=["receipt", "japanese", "credit-note"],
)
def test_rendering_twice_gives_the_same_bytes(content: DocumentContent) -> None:
    assert render(content) == render(content)


def test_rendering_a_long_invoice_twice_gives_the_same_bytes() -> None:
    assert long_invoice(40) == long_invoice(40)


def test_fonts_keep_working_across_many_documents() -> None:
    names = ["Łucja Wąs", "山田花子", "Ødegård AS", "Ζωή Παππά", "Иван Петров", "Ana Núñez"]
    for i in range(50):
        name = f"{names[i % len(names)]} {i}"
        language = LANGUAGES[i % len(LANGUAGES)]
        content = make_document(
            list(DocumentKind)[i % 3],
            items=[(f"Plan {i}", 1, 1000 + i * 37)],
            buyer=Party(name=name, country="DE"),
            language=language,
            locale="en_GB",
            number=f"DOC-{i:04d}",
        )

        words = pdf_text(render(content))

        assert name in words
        assert f"DOC-{i:04d}" in words
        assert Money(minor=1000 + i * 37, currency="EUR").format("en_GB") in words


def test_documents_rendered_in_threads_are_the_documents_rendered_alone() -> None:
    from concurrent.futures import ThreadPoolExecutor

    contents = [
        make_document(
            list(DocumentKind)[i % 3],
            number=f"DOC-{i}",
            buyer=JAPANESE_BUYER if i % 4 == 0 else BUYER,
            items=[(f"Plan {i}", 1, 1000 + i)],
        )
        for i in range(24)
    ]
    alone = [render(content) for content in contents]

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(render, contents))

    assert together == alone


def test_documents_leave_nothing_behind_in_fpdf2_caches() -> None:
    from fpdf.fonts import SubsetMap

    for i in range(20):
        render(make_document(number=f"RCT-{i}", buyer=JAPANESE_BUYER if i % 2 else BUYER))

    assert SubsetMap.pick.cache_info().currsize == 0
    assert SubsetMap.get_glyph.cache_info().currsize == 0


def test_embedded_glyphs_are_the_glyphs_of_the_characters_they_stand_for() -> None:
    """Catches a change in fpdf2 internals under `fonts.attach` and `fonts.Output`."""
    pdf = render(make_document(buyer=JAPANESE_BUYER, items=[("Ünïcödé ąę ΔЖ €", 1, 11900)]))
    originals = {
        "NotoSans": TTFont(fonts.FOLDER / "NotoSans-Regular.ttf"),
        "NotoSansBold": TTFont(fonts.FOLDER / "NotoSans-Bold.ttf"),
        "ChargeDeskGothicJP": TTFont(fonts.FOLDER / "ChargeDeskGothicJP-Regular.ttf"),
    }
    checked = 0
    for font_ref in PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"].values():
        type0 = font_ref.get_object()
        cid_font = type0["/DescendantFonts"][0].get_object()
        data = cid_font["/FontDescriptor"]["/FontFile2"].get_data()
        program = TTFont(io.BytesIO(data), checkChecksums=2)  # raises on a wrong table checksum
        assert _file_checksum(data) == 0xB1B0AFBA  # head.checkSumAdjustment is right
        original = originals[str(type0["/BaseFont"]).split("+", 1)[1]]
        cmap = original.getBestCmap()
        to_unicode = "".join(
            re.findall(
                r"beginbfchar(.*?)endbfchar", type0["/ToUnicode"].get_data().decode("latin-1"), re.S
            )
        )
        widths = _w_array(str(cid_font["/W"]))
        assert "/CIDToGIDMap" not in cid_font  # identity: a code is a glyph id
        for code, hex_text in re.findall(r"<([0-9A-F]{4})> <([0-9A-F]+)>", to_unicode):
            char = bytes.fromhex(hex_text).decode("utf-16-be")
            gid = int(code, 16)
            name = cmap[ord(char)]
            embedded = program.getGlyphOrder()[gid]
            assert program["hmtx"][embedded][0] == original["hmtx"][name][0], char
            assert _outline(program, embedded) == _outline(original, name), char
            scale = 1000 / original["head"].unitsPerEm
            assert widths[gid] == round(original["hmtx"][name][0] * scale + 0.001), char
            checked += 1
    assert checked > 60


def _file_checksum(data: bytes) -> int:
    words = array("I")
    words.frombytes(data + b"\0" * (-len(data) % 4))
    if sys.byteorder == "little":
        words.byteswap()
    return sum(words) & 0xFFFFFFFF


def _w_array(text: str) -> dict[int, int]:
    numbers = re.findall(r"\d+|\[|\]", text.replace(",", " "))
    widths: dict[int, int] = {}
    i = 1  # skip the outer "["
    while i < len(numbers) - 1:
        start = int(numbers[i])
        assert numbers[i + 1] == "["
        i += 2
        while numbers[i] != "]":
            widths[start] = int(numbers[i])
            start += 1
            i += 1
        i += 1
    return widths


def _outline(font: TTFont, name: str) -> list[tuple[str, tuple]]:
    from fontTools.pens.recordingPen import DecomposingRecordingPen

    pen = DecomposingRecordingPen(font.getGlyphSet())
    font.getGlyphSet()[name].draw(pen)
    return pen.value


def test_attached_fonts_can_only_be_embedded_by_our_output() -> None:
    from fpdf import FPDF

    def hello() -> FPDF:
        pdf = FPDF()
        fonts.attach(pdf)
        pdf.add_page()
        pdf.set_font(fonts.FAMILY, size=10)
        pdf.cell(text="Hello")
        return pdf

    with pytest.raises(RuntimeError, match="output_producer_class"):
        hello().output()
    assert "Hello" in pdf_text(bytes(hello().output(output_producer_class=fonts.Output)))


def test_only_japanese_text_needs_the_japanese_font() -> None:
    assert not fonts.needs_japanese(["Zażółć", "Ζωή", "Иван", "€ £ ¥ ₹ – “”"])
    assert fonts.needs_japanese(["Total", "山田"])
    assert fonts.needs_japanese(["￥5,500"])
    assert fonts.runs("Total 山田 ￥5,500") == [
        (fonts.FAMILY, "Total "),
        (fonts.JAPANESE, "山田"),
        (fonts.FAMILY, " "),
        (fonts.JAPANESE, "￥"),
        (fonts.FAMILY, "5,500"),
    ]
    assert fonts.runs("") == [(fonts.FAMILY, "")]


# --- labels ------------------------------------------------------------------------------


def test_every_language_has_every_label() -> None:
    for language in LANGUAGES:
        assert LABELS[language].keys() == LABELS["en"].keys(), language


def test_labels_fall_back_to_english_and_fill_in_fields() -> None:
    assert text("xx", "invoice") == "Invoice"
    assert text("de", "page", n="2", total="3") == "Seite 2 von 3"
    assert text("en", "credit_note_for", number="INV-1", date="1 May 2025") == (
        "Credit note for invoice INV-1 of 1 May 2025"
    )
    assert tax_name("de", "VAT") == "USt."
    assert tax_name("ja", "VAT") == "消費税"
    assert tax_name("fr", "GST") == "GST"
    assert tax_name("fr", "Sales tax") == "Sales tax"


def test_logo_is_decoded_once_for_many_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image, ImageCms  # fpdf2's own dependency

    from bot.documents import render as module

    decoded: list[str] = []
    real = module.get_img_info
    monkeypatch.setattr(module, "get_img_info", lambda path: decoded.append(path) or real(path))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    logo = tmp_path / "logo.png"
    Image.new("RGB", (300, 90), LOGO_COLOUR).save(logo, icc_profile=srgb)
    branding = Branding(**{**BRANDING.model_dump(), "logo": str(logo)})

    for i in range(3):
        pdf = render(make_document(branding=branding, number=f"RCT-{i}"))
        page = PdfReader(io.BytesIO(pdf)).pages[0]
        (image,) = (x.get_object() for x in page["/Resources"]["/XObject"].values())
        assert (image["/Width"], image["/Height"]) == (300, 90)
        assert image["/ColorSpace"][0] == "/ICCBased"
        assert f"RCT-{i}" in pdf_text(pdf)
    assert decoded == [str(logo)]


def test_a_missing_logo_file_leaves_the_name_as_letterhead(tmp_path: Path) -> None:
    branding = Branding(**{**BRANDING.model_dump(), "logo": str(tmp_path / "gone.png")})

    pdf = render(make_document(branding=branding))

    assert pdf_text(pdf).startswith("ChargeDesk Demo GmbH Friedrichstraße 68")
    assert "/XObject" not in PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]


# --- how it looks ------------------------------------------------------------------------

LOGO_COLOUR = (0xE4, 0x57, 0x2E)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where rendered pages are kept: $CHARGEDESK_ARTIFACTS if set, else the test's temp dir."""
    folder = Path(os.environ.get("CHARGEDESK_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed"
)
def test_pages_render_with_logo_header_and_text(tmp_path: Path, artifacts: Path) -> None:
    from PIL import Image  # fpdf2's own dependency

    logo = tmp_path / "logo.png"
    Image.new("RGB", (300, 90), LOGO_COLOUR).save(logo)
    content = make_document(
        DocumentKind.invoice,
        branding=Branding(**{**BRANDING.model_dump(), "logo": str(logo)}),
        buyer=BUYER,
    )
    pdf_path = artifacts / "invoice-with-logo.pdf"
    pdf_path.write_bytes(render(content))

    subprocess.run(["pdftoppm", "-r", "50", str(pdf_path), str(tmp_path / "page")], check=True)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", str(pdf_path), str(artifacts / "invoice-with-logo")],
        check=True,
    )
    width, height, pixels = _read_ppm(tmp_path / "page-1.ppm")

    assert abs(width - 413) <= 1 and abs(height - 585) <= 1  # A4 at 50 dpi
    assert (artifacts / "invoice-with-logo-1.png").stat().st_size > 10_000
    header = [_pixel(pixels, width, x, y) for y in range(20, 120) for x in range(20, width - 20)]
    dark = sum(1 for r, g, b in header if r + g + b < 250)
    logo_pixels = sum(
        1 for p in header if all(abs(a - b) < 24 for a, b in zip(p, LOGO_COLOUR, strict=True))
    )
    assert dark > 300  # the title, number, seller and dates
    assert logo_pixels > 200
    everything = [
        _pixel(pixels, width, x, y) for y in range(0, height, 3) for x in range(0, width, 3)
    ]
    assert sum(1 for p in everything if p != (255, 255, 255)) > 2_000  # not a blank page


def _read_ppm(path: Path) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of a binary PPM (P6), as pdftoppm writes it."""
    data = path.read_bytes()
    fields = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    assert fields is not None
    return int(fields[1]), int(fields[2]), data[fields.end() :]


def _pixel(pixels: bytes, width: int, x: int, y: int) -> tuple[int, int, int]:
    i = 3 * (y * width + x)
    return pixels[i], pixels[i + 1], pixels[i + 2]
