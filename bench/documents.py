"""PDF documents per second on one core: our receipts, invoices and credit notes, and bare fpdf2.

    cd /work/main && PYTHONPATH=. python bench/documents.py [--docs 300] [--rounds 5]

Each case renders `--docs` documents in a row, `--rounds` times, after a
warm-up. Rates are of CPU time (`time.process_time`: one core, whatever else
the machine runs) in the best round; the mean wall time per document over all
rounds is shown beside them. The bare rows are the floor:
a one-page fpdf2 document with two lines of text, in the core Helvetica font
(nothing embedded) and in our Noto Sans added with `add_font` (what fpdf2 does
on its own: parse the font, subset it with fontTools at output); and the same
with every string of our English receipt, drawn with `FPDF.text` where the
receipt has it (read back with pypdf): the page without our layout, rules and
colours, in Helvetica, in Noto Sans by `add_font`, and in Noto Sans embedded
as our documents embed it (`fonts.attach` and `fonts.Output`).

Goals (issue 19): at least 300 English receipts a second on one core, and a
multi-page invoice laid out once: the script renders a 3-page invoice and
counts the fpdf2 documents the renderer laid out for it
(`bot.documents.render.layouts`), failing unless it is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from _common import table
from fpdf import FPDF
from PIL import Image  # fpdf2's own dependency
from pypdf import PdfReader  # a dev dependency: reads the receipt's strings and pages back

from bot.documents import fonts
from bot.documents.model import (
    Branding,
    DocumentContent,
    DocumentKind,
    Party,
    TaxTreatment,
)
from bot.documents.render import layouts, render
from bot.documents.tax import line, summarize

ISSUED = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)
GOAL_RECEIPTS = 300  # English receipts a second on one core
LONG_INVOICE = "invoice, 70 lines, 3 pages (en)"
SELLER = Party(
    name="ChargeDesk Demo GmbH",
    address=("Friedrichstraße 68", "10117 Berlin"),
    country="DE",
    email="billing@chargedesk.example",
    tax_id="DE123456789",
    registration="HRB 123456 B",
)
BRANDING = Branding(
    primary_colour="#1F3A5F",
    accent_colour="#E8EEF5",
    footer="IBAN DE89 3704 0044 0532 0130 00 · BIC COBADEFFXXX",
    website="chargedesk.example",
)


def document(
    kind: DocumentKind,
    *,
    locale: str,
    language: str,
    buyer: Party,
    items: Sequence[tuple[str, int, int]],
    rate: str = "19",
    currency: str = "EUR",
    number: int = 42,
    treatment: TaxTreatment = TaxTreatment.standard,
) -> DocumentContent:
    """A document with tax included in `items` (description, quantity, gross minor units)."""
    lines = tuple(
        line(text, gross, Decimal(rate), quantity=quantity) for text, quantity, gross in items
    )
    prefix = {"invoice": "INV", "receipt": "RCT", "credit_note": "CN"}[kind.value]
    credit = kind is DocumentKind.credit_note
    return DocumentContent(
        kind=kind,
        number=f"{prefix}-2025-{number:06d}",
        entity="default",
        issued_at=ISSUED,
        locale=locale,
        language=language,
        currency=currency,
        seller=SELLER,
        buyer=buyer,
        branding=BRANDING,
        lines=lines,
        taxes=summarize(lines),
        treatment=treatment,
        tax_name="VAT",
        source_gateway="stripe",
        source_id=f"ch_bench_{number}",
        reference=f"ch_3MtwBwLkdIwHu7ix{number:08d}",
        paid_at=None if kind is DocumentKind.invoice else ISSUED,
        due_date=datetime(2025, 3, 26, tzinfo=UTC) if kind is DocumentKind.invoice else None,
        payment_method="Visa •••• 4242" if kind is DocumentKind.receipt else None,
        related_number="INV-2025-000041" if credit else None,
        related_issued_at=datetime(2025, 2, 28, tzinfo=UTC) if credit else None,
        reason="Duplicate charge" if credit else None,
    )


def cases(logo: str) -> dict[str, DocumentContent]:
    """The documents timed; `logo` is a PNG file for the branded receipt."""
    english = Party(
        name="Jane Doe",
        address=("221B Baker Street", "London NW1 6XE"),
        country="GB",
        email="jane@example.co.uk",
    )
    polish = Party(
        name="Zażółć Gęślą Jaźń sp. z o.o.",
        address=("ul. Świętokrzyska 12", "00-916 Warszawa"),
        country="PL",
        email="ksiegowosc@example.pl",
        tax_id="PL5261040828",
    )
    german = Party(
        name="Müller & Söhne GmbH",
        address=("Königsallee 1", "40212 Düsseldorf"),
        country="DE",
        email="buchhaltung@example.de",
        tax_id="DE987654321",
    )
    japanese = Party(
        name="山田太郎",
        address=("東京都千代田区丸の内1-1-1", "〒100-0005"),
        country="JP",
        email="taro@example.jp",
    )
    plan = [("Pro plan, monthly", 1, 11900)]
    usage = [
        (f"API calls, region eu-west-{i % 3}, per thousand ({i + 1})", 1, 1000 + i)
        for i in range(70)
    ]
    return {
        "receipt (en)": document(
            DocumentKind.receipt, locale="en_GB", language="en", buyer=english, items=plan
        ),
        "receipt (en), with a logo": document(
            DocumentKind.receipt, locale="en_GB", language="en", buyer=english, items=plan
        ).model_copy(update={"branding": BRANDING.model_copy(update={"logo": logo})}),
        "receipt (pl)": document(
            DocumentKind.receipt,
            locale="pl_PL",
            language="pl",
            buyer=polish,
            items=[("Plan Pro, miesięczny", 1, 12300)],
            rate="23",
            currency="PLN",
        ),
        "invoice, 3 lines (de, VAT)": document(
            DocumentKind.invoice,
            locale="de_DE",
            language="de",
            buyer=german,
            items=[
                ("Pro-Tarif, monatlich (März 2025)", 1, 11900),
                ("Zusätzliche Nutzer", 3, 3570),
                ("Priorisierter Support", 1, 5831),
            ],
        ),
        "receipt (ja)": document(
            DocumentKind.receipt,
            locale="ja_JP",
            language="ja",
            buyer=japanese,
            items=[("プロプラン（月額）", 1, 5500)],
            rate="10",
            currency="JPY",
        ),
        "credit note (fr, reverse charge)": document(
            DocumentKind.credit_note,
            locale="fr_FR",
            language="fr",
            buyer=german.model_copy(update={"name": "Acme SARL", "country": "FR"}),
            items=plan,
            rate="0",
            treatment=TaxTreatment.reverse_charge,
        ),
        LONG_INVOICE: document(
            DocumentKind.invoice, locale="en_GB", language="en", buyer=english, items=usage
        ),
    }


# --- the bare floor ----------------------------------------------------------------------


def bare_helvetica() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=10)
    pdf.cell(text="Receipt RCT-2025-000042", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(text="Total paid: EUR 119.00")
    return bytes(pdf.output())


def bare_noto() -> bytes:
    pdf = FPDF()
    pdf.add_font("noto", "", fonts.FOLDER / "NotoSans-Regular.ttf")
    pdf.add_page()
    pdf.set_font("noto", size=10)
    pdf.cell(text="Receipt RCT-2025-000042", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(text="Total paid: 119,00 €")
    return bytes(pdf.output())


@dataclass(frozen=True)
class Placed:
    x: float  # points from the left
    y: float  # points from the top (the baseline)
    text: str
    bold: bool


def placed_text(pdf: bytes) -> list[Placed]:
    """Every string on the first page of `pdf`, where it is drawn."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    height = float(page.mediabox.height)
    found: list[Placed] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        if text.strip():
            name = str(font.get("/BaseFont", "")) if isinstance(font, dict) else ""
            found.append(Placed(tm[4], height - tm[5], text, "Bold" in name))

    page.extract_text(visitor_text=visit)
    return found


def bare_page(strings: Sequence[Placed], font: str) -> bytes:
    """`strings` drawn at their places, 9 pt, in `font`: "helvetica", "add_font" or "ours"."""
    pdf = FPDF(unit="pt")
    if font == "add_font":  # fpdf2 on its own: parses the files, subsets with fontTools
        pdf.add_font(fonts.FAMILY, "", fonts.FOLDER / "NotoSans-Regular.ttf")
        pdf.add_font(fonts.FAMILY, "B", fonts.FOLDER / "NotoSans-Bold.ttf")
    elif font == "ours":
        fonts.attach(pdf)
    pdf.add_page()
    family = "helvetica" if font == "helvetica" else fonts.FAMILY
    for s in strings:
        pdf.set_font(family, "B" if s.bold else "", 9)
        text = s.text
        if font == "helvetica":  # the core fonts print Latin-1 only: € and • become "?"
            text = text.encode("latin-1", "replace").decode("latin-1")
        pdf.text(s.x, s.y, text)
    if font == "ours":
        return bytes(pdf.output(output_producer_class=fonts.Output))
    return bytes(pdf.output())


# --- timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    cpu: list[float]  # CPU seconds per document, per round
    wall: list[float]  # wall seconds per document, per round
    size: int  # bytes of one document

    @property
    def best(self) -> float:
        return min(self.cpu)


def timing(call: Callable[[], bytes], docs: int, count: int, warmup: int) -> Timing:
    """Seconds per document in each of `count` rounds of `docs` documents."""
    for _ in range(warmup):
        call()
    cpu, wall = [], []
    for _ in range(count):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in range(docs):
            call()
        cpu.append((time.process_time() - start_cpu) / docs)
        wall.append((time.perf_counter() - start_wall) / docs)
    return Timing(cpu, wall, len(call()))


BARE = (
    "bare fpdf2, 1 page, core Helvetica",
    "bare fpdf2, 1 page, Noto Sans (add_font)",
    "bare fpdf2, the receipt's strings, core Helvetica",
    "bare fpdf2, the receipt's strings, Noto Sans (add_font)",
    "bare fpdf2, the receipt's strings, Noto Sans as we embed it",
)


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="chargedesk-bench-") as folder:
        logo = Path(folder) / "logo.png"
        Image.new("RGB", (600, 180), (31, 58, 95)).save(logo)  # a 600 x 180 px PNG
        return run(args, cases(str(logo)))


def run(args: argparse.Namespace, documents: dict[str, DocumentContent]) -> int:
    started = time.perf_counter()
    ok = True
    strings = placed_text(render(documents["receipt (en)"]))
    calls: dict[str, Callable[[], bytes]] = dict(
        zip(
            BARE,
            (
                bare_helvetica,
                bare_noto,
                lambda: bare_page(strings, "helvetica"),
                lambda: bare_page(strings, "add_font"),
                lambda: bare_page(strings, "ours"),
            ),
            strict=True,
        )
    )
    for name, content in documents.items():
        calls[name] = lambda content=content: render(content)
        if render(content) != render(content):  # re-rendering must give the same bytes
            print(f"{name}: two renders differ", file=sys.stderr)
            ok = False
    measured = {
        name: timing(call, args.docs, args.rounds, args.warmup) for name, call in calls.items()
    }

    receipt = measured["receipt (en)"].best
    rows = [
        [
            name,
            f"{1 / t.best:,.0f}",
            f"{t.best * 1000:.2f}",
            f"{statistics.fmean(t.wall) * 1000:.2f}",
            f"{t.size / 1024:.1f}",
            f"{t.best / receipt:.2f}x",
        ]
        for name, t in measured.items()
    ]
    print(
        table(
            ["document", "docs/s", "CPU ms", "wall ms (mean)", "KiB", "vs receipt (en)"],
            rows,
            title=(
                f"PDF documents on one core: best of {args.rounds} rounds of {args.docs} "
                f"documents each, after {args.warmup} warm-up renders"
            ),
        )
    )
    ratios = [[name, f"{receipt / measured[name].best:.2f}x"] for name in BARE]
    print(table(["receipt (en) compared with", "CPU time ratio"], ratios, title="Our receipt"))

    before = layouts()
    long_invoice = render(documents[LONG_INVOICE])
    passes = layouts() - before
    pages = len(PdfReader(io.BytesIO(long_invoice)).pages)
    goals = [
        [
            f"receipts (en) a second on one core: {GOAL_RECEIPTS} or more",
            f"{1 / receipt:,.0f}",
            "met" if 1 / receipt >= GOAL_RECEIPTS else "NOT met",
        ],
        [
            f"layout passes of the {pages}-page invoice: 1",
            str(passes),
            "met" if passes == 1 else "NOT met",
        ],
    ]
    print(table(["goal", "measured", ""], goals, title="Goals"))
    digest = hashlib.sha256(render(documents["receipt (en)"])).hexdigest()[:16]
    print(f"\nreceipt (en) sha256 {digest}…; bench time {time.perf_counter() - started:.1f} s")
    if not ok:
        print("FAILED: rendering is not deterministic (see above)", file=sys.stderr)
        return 1
    if passes != 1:
        print(f"FAILED: the {pages}-page invoice was laid out {passes} times", file=sys.stderr)
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300, help="documents per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case")
    parser.add_argument("--warmup", type=int, default=30, help="untimed renders first")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
