"""Import the business's billing data into the ledger gateway's tables.

Two formats:

* JSON: `{"customers": [...], "charges": [...], "refunds": [...], "subscriptions": [...],
  "invoices": [...], "disputes": [...]}`, every key optional. Amounts are integers in
  minor units beside a `currency`, as in Stripe's API (`"amount": 4200, "currency": "EUR"`).
* CSV: one object type per file, named by the file's stem (`charges.csv`) or by `kind=`.
  Amounts are decimal text in major units (`42.00`), read with `parse_money` in the
  row's currency, so `500.5` JPY is refused. Rows are numbered as a spreadsheet shows
  them: the header is row 1.

Columns and keys are the same in both formats; references use Stripe's names
(`customer`, `charge`, `invoice`). Every row is validated; every problem found is
reported at once, and one problem means nothing at all is written. Rows are upserted
by id, so importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import reprlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TextIO, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    delete,
    insert,
    inspect,
    null,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles

from bot.gateways.base import GatewayError
from bot.gateways.readings import folded
from bot.models import ChargeStatus, DisputeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import MAX_MINOR_DIGITS, Money, normalize_currency, parse_money
from bot.store.db import Database
from bot.store.tables import (
    Base,
    LedgerCharge,
    LedgerCoupon,
    LedgerCustomer,
    LedgerDispute,
    LedgerInvoice,
    LedgerOperation,
    LedgerRefund,
    LedgerSubscription,
    UTCDateTime,
)
from bot.tax_ids import checked_tax_id

# Summary order; it is also a valid write order (customers and charges come first).
KINDS = ("customers", "charges", "refunds", "subscriptions", "invoices", "disputes", "coupons")
MAX_PROBLEMS_SHOWN = 20
# IDs looked up per query; they travel as one JSON parameter (see `_among`).
_IN_CHUNK = 10_000
_UNITS = "units"
_ZERO = re.compile(r"^0+(?:[.,]0*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Errors quote what they refuse, but never more than this of it: an import is untrusted
# input, and a megabyte cell must not become a megabyte error line.
ECHO_MAX = 60
_PROBLEM_MAX = 400
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


class LedgerImportError(Exception):
    """The import was refused; nothing was written. `problems` lists every one found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        count = len(self.problems)
        lines = [f"import refused, nothing was written ({_plural(count, 'problem')}):"]
        lines += [f"  {p}" for p in shown]
        if count > len(shown):
            lines.append(f"  ... and {count - len(shown)} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class NewMoney:
    """Payments and refunds an import added (not updated): receipts and credit notes follow them."""

    payments: list[str]  # charge IDs that took money
    refunds: list[tuple[str, str, str | None]]  # (charge ID, refund ID, reason)
    # The same as SELECTs of (charge_id, source_id, reason) over the staged rows, for
    # writing one row per source by `INSERT ... SELECT` inside the import's transaction.
    payment_rows: Select[Any] | None = None
    refund_rows: Select[Any] | None = None


# Runs inside the import's transaction, after its rows are written.
OnWrite = Callable[[AsyncSession, NewMoney], Awaitable[None]]


@dataclass
class ImportSummary:
    """How many rows of each type were imported (inserted or updated)."""

    customers: int = 0
    charges: int = 0
    refunds: int = 0
    subscriptions: int = 0
    invoices: int = 0
    disputes: int = 0
    coupons: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        parts = [
            _plural(getattr(self, f.name), f.name.removesuffix("s"))
            for f in fields(self)
            if getattr(self, f.name)
        ]
        return f"imported {', '.join(parts)}" if parts else "imported nothing"


# --- field types ------------------------------------------------------------------------


_SPACE = re.compile(r"\s")  # str patterns: the characters str.isspace accepts


def _object_id(value: str) -> str:
    if _SPACE.search(value):
        raise ValueError(f"{_echo(value)} must not contain spaces")
    return value


def _currency(value: str) -> str:
    if len(value) > 8:  # the money module would quote all of it
        raise ValueError(f"unknown currency {_echo(value)}: use an ISO 4217 code such as EUR")
    return normalize_currency(value)


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError(f"{_echo(value)} is not an email address")
    return value


def _as_utc(value: datetime) -> datetime:
    # Exports often drop the zone; UTC is the only reading that is not a guess per row.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _minor_units(value: Any, info: ValidationInfo) -> Any:
    if (info.context or {}).get(_UNITS) == "major":
        return _major_to_minor(value, info.data.get("currency"))
    # bool is an int to Python, and a float would silently lose the exactness we promise.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"{_echo(value)} is not an amount: use an integer in minor units (4200 for 42.00 EUR)"
        )
    if value < 0:
        raise ValueError(f"{_echo(value)} is negative: amounts are always positive")
    if value >= 10**MAX_MINOR_DIGITS:
        raise ValueError(f"{_echo(value)} is too large")
    return value


def _major_to_minor(value: Any, currency: str | None) -> int:
    if currency is None:
        raise ValueError("cannot be read without a valid currency")
    text = str(value).strip()
    # parse_money refuses zero (nobody refunds nothing), but zero is a fine balance here.
    if _ZERO.match(text):
        return 0
    if len(text) > MAX_MINOR_DIGITS + 8:  # the money module would quote all of it
        raise ValueError(f"{_echo(text)} is not an amount")
    return parse_money(text, currency).minor


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


ObjectId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_object_id),
]
CurrencyCode = Annotated[str, AfterValidator(_currency)]
Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Minor = Annotated[int, BeforeValidator(_minor_units)]
PositiveMinor = Annotated[int, BeforeValidator(_minor_units), AfterValidator(_positive)]


Text64 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Country = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$")
]
Locale = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$")
]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Text500 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


# --- rows -------------------------------------------------------------------------------
#
# In every row `currency` comes before the amounts: CSV amounts are read in the
# row's currency, and pydantic validates fields in the order they are declared.


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    table: ClassVar[type[Base]]

    id: ObjectId

    def problems(self) -> list[tuple[str, str]]:
        """Rules across fields, as (field, problem) pairs."""
        return []

    def columns(self) -> dict[str, Any]:
        """The row as the table's column values."""
        raise NotImplementedError


class CustomerRow(_Row):
    table = LedgerCustomer

    email: Email | None = None
    name: Text200 | None = None
    created: UtcDatetime | None = None
    # Billing details for documents; flat so that a CSV has one column each.
    address_line1: Text200 | None = None
    address_line2: Text200 | None = None
    postal_code: Text64 | None = None
    city: Text200 | None = None
    state: Text200 | None = None
    country: Country | None = None
    locale: Locale | None = None
    tax_exempt: bool = False
    tax_id: Text64 | None = None

    def checked_tax_id(self) -> tuple[str | None, str | None]:
        """(Stripe's type, normalized number), read as the ledger gateway reads one typed in."""
        if not self.tax_id:
            return None, None
        return checked_tax_id(self.tax_id, country=self.country, gateway="ledger")

    def problems(self) -> list[tuple[str, str]]:
        try:
            self.checked_tax_id()
        except GatewayError as exc:
            return [("tax_id", exc.message)]
        return []

    def columns(self) -> dict[str, Any]:
        address = {
            "line1": self.address_line1,
            "line2": self.address_line2,
            "postal_code": self.postal_code,
            "city": self.city,
            "state": self.state,
            "country": self.country,
        }
        kind, tax_id = self.checked_tax_id()
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "created": self.created,
            "address": {k: v for k, v in address.items() if v} or None,
            "locale": self.locale,
            "tax_exempt": self.tax_exempt,
            "tax_id_type": kind,
            "tax_id_value": tax_id,
        }


_NOT_CAPTURED = (ChargeStatus.authorized, ChargeStatus.failed, ChargeStatus.voided)


class ChargeRow(_Row):
    table = LedgerCharge

    customer: ObjectId | None = None
    currency: CurrencyCode
    amount: PositiveMinor
    status: ChargeStatus
    amount_captured: Minor | None = None
    amount_refunded: Minor = 0
    description: Text500 | None = None
    invoice: ObjectId | None = None
    subscription: ObjectId | None = None  # the subscription it paid for (cancel and-refund)
    failure_message: Text500 | None = None
    created: UtcDatetime | None = None

    @property
    def captured(self) -> int:
        if self.amount_captured is not None:
            return self.amount_captured
        return 0 if self.status in _NOT_CAPTURED else self.amount

    def problems(self) -> list[tuple[str, str]]:
        money = _formatter(self.currency)
        status, captured, refunded = self.status, self.captured, self.amount_refunded
        if captured > self.amount:
            return [("amount_captured", f"{money(captured)} is more than the charge's amount")]
        if status in _NOT_CAPTURED:
            if captured:
                return [("amount_captured", f"{_a(status)} charge has captured nothing")]
            if refunded:
                return [("amount_refunded", f"{_a(status)} charge has nothing to refund")]
            return []
        if refunded > captured:
            problem = f"{money(refunded)} is more than the {money(captured)} captured"
        elif status == ChargeStatus.succeeded and refunded:
            problem = "a succeeded charge has no refunds: use partially_refunded or refunded"
        elif status == ChargeStatus.partially_refunded and not 0 < refunded < captured:
            problem = f"a partially_refunded charge refunds part of the {money(captured)} captured, not {money(refunded)}"
        elif status == ChargeStatus.refunded and refunded != captured:
            problem = (
                f"a refunded charge refunds all {money(captured)} captured, not {money(refunded)}"
            )
        else:
            return []
        return [("amount_refunded", problem)]

    def columns(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer,
            "amount": self.amount,
            "currency": self.currency,
            "amount_captured": self.captured,
            "amount_refunded": self.amount_refunded,
            "status": self.status.value,
            "description": self.description,
            "invoice_id": self.invoice,
            "subscription_id": self.subscription,
            "failure_message": self.failure_message,
            "created": self.created,
        }


class RefundRow(_Row):
    table = LedgerRefund

    charge: ObjectId
    currency: CurrencyCode
    amount: PositiveMinor
    reason: Text500 | None = None
    created: UtcDatetime | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charge_id": self.charge,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "created": self.created,
        }


class SubscriptionRow(_Row):
    table = LedgerSubscription

    customer: ObjectId
    plan: Text200
    status: SubscriptionStatus
    currency: CurrencyCode
    amount: Minor
    interval: Literal["day", "week", "month", "year"] = "month"
    current_period_end: UtcDatetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: UtcDatetime | None = None

    def problems(self) -> list[tuple[str, str]]:
        if not self.plan:
            return [("plan", "must not be empty")]
        if self.status == SubscriptionStatus.canceled and self.cancel_at_period_end:
            return [("cancel_at_period_end", "a canceled subscription has nothing left to cancel")]
        return []

    def columns(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer,
            "plan": self.plan,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "interval": self.interval,
            "current_period_end": self.current_period_end,
            "cancel_at_period_end": self.cancel_at_period_end,
            "canceled_at": self.canceled_at,
        }


class InvoiceLineRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: Text500
    quantity: Annotated[int, AfterValidator(_positive)] = 1
    amount: Minor


class InvoiceRow(_Row):
    table = LedgerInvoice

    customer: ObjectId
    number: Text64 | None = None
    status: InvoiceStatus
    currency: CurrencyCode
    amount_due: Minor
    amount_paid: Minor | None = None
    due_date: UtcDatetime | None = None
    created: UtcDatetime | None = None
    charge: ObjectId | None = None
    lines: list[InvoiceLineRow] | None = None

    @property
    def paid(self) -> int:
        if self.amount_paid is not None:
            return self.amount_paid
        return self.amount_due if self.status == InvoiceStatus.paid else 0

    def problems(self) -> list[tuple[str, str]]:
        money = _formatter(self.currency)
        found = []
        if self.paid > self.amount_due:
            found.append(
                ("amount_paid", f"{money(self.paid)} is more than the {money(self.amount_due)} due")
            )
        if self.lines and sum(line.amount for line in self.lines) != self.amount_due:
            total = sum(line.amount for line in self.lines)
            found.append(
                ("lines", f"add up to {money(total)}, not the {money(self.amount_due)} due")
            )
        return found

    def columns(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer,
            "number": self.number,
            "status": self.status.value,
            "amount_due": self.amount_due,
            "amount_paid": self.paid,
            "currency": self.currency,
            "due_date": self.due_date,
            "created": self.created,
            "charge_id": self.charge,
            "lines": [line.model_dump() for line in self.lines] if self.lines else None,
        }


class DisputeRow(_Row):
    table = LedgerDispute

    charge: ObjectId
    currency: CurrencyCode
    amount: PositiveMinor
    reason: Text64 = "general"
    status: DisputeStatus
    evidence_due_by: UtcDatetime | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charge_id": self.charge,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "status": self.status.value,
            "evidence_due_by": self.evidence_due_by,
        }


class CouponRow(_Row):
    """A coupon: `id` is the code agents apply; a percentage off or an amount off."""

    table = LedgerCoupon

    name: Text200 | None = None
    percent_off: Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)] | None = None
    currency: CurrencyCode | None = None
    amount_off: PositiveMinor | None = None
    duration: Literal["once", "repeating", "forever"] = "once"
    duration_in_months: Annotated[int, Field(ge=1, le=120)] | None = None
    active: bool = True

    def problems(self) -> list[tuple[str, str]]:
        if (self.percent_off is None) == (self.amount_off is None):
            return [("percent_off", "give either percent_off or amount_off")]
        if self.amount_off is not None and self.currency is None:
            return [("currency", "is needed beside amount_off")]
        if (self.duration == "repeating") != (self.duration_in_months is not None):
            return [("duration_in_months", "is given for a repeating coupon, and only then")]
        return []

    def columns(self) -> dict[str, Any]:
        percent = self.percent_off
        return {
            "id": self.id, "name": self.name,
            "percent_off_bp": int(percent * 100) if percent is not None else None,
            "amount_off": self.amount_off,
            "currency": self.currency if self.amount_off is not None else None,
            "duration": self.duration, "duration_in_months": self.duration_in_months,
            "active": self.active,
        }  # fmt: skip


ROWS: dict[str, type[_Row]] = {
    "customers": CustomerRow,
    "charges": ChargeRow,
    "refunds": RefundRow,
    "subscriptions": SubscriptionRow,
    "invoices": InvoiceRow,
    "disputes": DisputeRow,
    "coupons": CouponRow,
}


# --- entry points -----------------------------------------------------------------------


async def import_file(
    db: Database, path: Path | str, kind: str | None = None, *, on_write: OnWrite | None = None
) -> ImportSummary:
    """Import a JSON file (all types) or a CSV file (one type, from its name or `kind`)."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix == ".csv":
        kind = _kind(kind or path.stem.lower(), name)
        try:
            handle = await asyncio.to_thread(path.open, encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise LedgerImportError([f"{name}: cannot be read: {exc}"]) from None
        with handle:  # read row by row while validating: the file is never whole in memory
            return await _import(
                db, {kind: _csv_rows(handle, name)}, units="major", on_write=on_write
            )
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerImportError([f"{name}: cannot be read: {exc}"]) from None
    if suffix == ".json":
        batch = _json_batch(text, name, kind, path.stem)
        del text  # the parsed rows are all that is needed from here
        return await _import(db, batch, units="minor", on_write=on_write)
    raise LedgerImportError([f"{name}: unknown format: use a .json or a .csv file"])


async def import_data(
    db: Database, data: Mapping[str, Any], *, source: str = "data", on_write: OnWrite | None = None
) -> ImportSummary:
    """Import the JSON-shaped `data`; `source` names it in error messages."""
    return await _import(db, _sections(data, source), units="minor", on_write=on_write)


# --- reading ----------------------------------------------------------------------------

# A row to validate: where it is ("charges.csv:row 3") and its raw fields.
_Raw = tuple[str, Any]


def _kind(kind: str, name: str) -> str:
    if kind not in ROWS:
        raise LedgerImportError(
            [
                f"{name}: cannot tell what it holds: name the file one of {', '.join(f'{k}.csv' for k in KINDS)} or pass kind="
            ]
        )
    return kind


def _json_batch(text: str, name: str, kind: str | None, stem: str) -> dict[str, list[_Raw]]:
    data, duplicates = _parse_json(text, name)
    if isinstance(data, list):
        # A bare list holds one type, named like a CSV file's.
        kind = _kind(kind or stem.lower(), name)
        if duplicates:
            _refuse_duplicate_keys(data, name, kind)
        return _sections({kind: data}, name)
    if kind is not None:
        raise LedgerImportError([f"{name}: kind= applies to CSV files and JSON lists only"])
    if duplicates:
        _refuse_duplicate_keys(data, name, None)
    return _sections(data, name)


class _Object(dict[str, Any]):
    """A JSON object that was given some keys more than once (plain dicts were not)."""

    duplicates: tuple[str, ...] = ()


def _parse_json(text: str, name: str) -> tuple[Any, bool]:
    """The parsed file, and whether some object in it names a key twice."""
    duplicates = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicates
        found = dict(items)
        if len(found) == len(items):
            return found
        duplicates = True
        # json.loads would keep the last of two values silently: remember it to refuse it.
        obj = _Object(items)
        counts = Counter(key for key, _ in items)
        obj.duplicates = tuple(key for key, n in counts.items() if n > 1)
        return obj

    try:
        return json.loads(text, object_pairs_hook=pairs), duplicates
    except RecursionError:
        raise LedgerImportError([f"{name}: not valid JSON: nested too deeply"]) from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise LedgerImportError([f"{name}: not valid JSON: {_clip(str(exc))}"]) from None


def _refuse_duplicate_keys(data: Any, name: str, kind: str | None) -> None:
    """Refuse objects that name a key twice, each by where it is (`charges row 3.lines[0]`)."""
    found: list[str] = []
    # A stack, not recursion: the nesting is the file's to choose.
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Object):
            where = f"{name}:{path}" if path else name
            found += [f"{where}: duplicate key {_echo(k)}: each key once" for k in value.duplicates]
        if isinstance(value, dict):
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()]
        elif isinstance(value, list):
            if path in ROWS or (not path and kind is not None):
                section = path or kind
                children = [(v, f"{section} row {i}") for i, v in enumerate(value, 1)]
            else:
                children = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    if found:
        raise LedgerImportError(found)


def _sections(data: Any, source: str) -> dict[str, list[_Raw]]:
    if not isinstance(data, Mapping):
        raise LedgerImportError([f"{source}: expected an object with keys {', '.join(KINDS)}"])
    unknown = sorted(str(k) for k in data if k not in ROWS)
    if unknown:
        raise LedgerImportError(
            [f"{source}: unknown key {_echo(k)}: expected {', '.join(KINDS)}" for k in unknown]
        )
    batch: dict[str, list[_Raw]] = {}
    for kind, rows in data.items():
        if not isinstance(rows, list):
            raise LedgerImportError([f"{source}: {kind} must be a list of objects"])
        batch[kind] = [(f"{source}:{kind} row {n}", row) for n, row in enumerate(rows, 1)]
    return batch


def _csv_rows(handle: TextIO, name: str) -> Iterator[_Raw]:
    records = _csv_records(handle, name)
    header = next(records, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    duplicates = sorted(h for h, n in Counter(header).items() if n > 1)
    if duplicates:
        raise LedgerImportError(
            [f"{name}:row 1: duplicate columns {', '.join(_echo(h) for h in duplicates)}"]
        )
    for n, cells in enumerate(records, 2):
        if not any(c.strip() for c in cells):
            continue
        where = f"{name}:row {n}"
        # Trailing empty cells are what spreadsheets leave behind; anything else is a shift.
        if any(c.strip() for c in cells[len(header) :]):
            yield where, _TooWide(len(cells), len(header))
            continue
        # An empty cell is a missing value, so optional columns take their defaults.
        yield where, {h: c for h, c in zip(header, cells, strict=False) if c.strip()}


def _csv_records(handle: TextIO, name: str) -> Iterator[list[str]]:
    """The file's records; one the csv module cannot read refuses the file, naming its row."""
    reader = csv.reader(handle)
    row = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise LedgerImportError([f"{name}: cannot be read: {exc}"]) from None
        except csv.Error as exc:
            if "field limit" in str(exc):
                problem = f"a cell is longer than {csv.field_size_limit()} characters"
            else:
                problem = f"not valid CSV: {_clip(str(exc))}"
            raise LedgerImportError([f"{name}:row {row}: {problem}"]) from None
        yield cells
        row += 1


@dataclass(frozen=True)
class _TooWide:
    cells: int
    columns: int


# --- validating -------------------------------------------------------------------------

_R = TypeVar("_R", bound=_Row)


@dataclass
class _Batch:
    """Valid rows by kind and id, plus where every id was seen, valid or not."""

    rows: dict[str, dict[str, tuple[str, _Row]]]
    seen: dict[str, dict[str, str]]

    def of(self, kind: str, model: type[_R]) -> list[tuple[str, _R]]:
        """The valid rows of one kind, typed, with where each was."""
        rows = self.rows[kind].values()
        if ROWS[kind] is model:  # every valid row of a kind is its model's: no test per row
            return list(rows)  # type: ignore[arg-type]
        return [(where, row) for where, row in rows if isinstance(row, model)]


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, field: str | None, problem: str) -> None:
        # Field names come from the file too (an unknown CSV column, a JSON key).
        field = field if field is None or len(field) <= ECHO_MAX else _echo(field)
        problem = _clip(problem)
        self.lines.append(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


def _validate(batch: Mapping[str, Iterable[_Raw]], units: str, problems: _Problems) -> _Batch:
    result = _Batch(rows={k: {} for k in KINDS}, seen={k: {} for k in KINDS})
    for kind, raws in batch.items():
        model = ROWS[kind]
        for where, raw in raws:
            if isinstance(raw, _TooWide):
                problems.add(
                    where, None, f"{raw.cells} cells but the header has {raw.columns} columns"
                )
                continue
            if not isinstance(raw, Mapping):
                problems.add(where, None, "must be an object")
                continue
            raw_id = raw.get("id")
            if isinstance(raw_id, str) and raw_id.strip():
                raw_id = raw_id.strip()
                if raw_id in result.seen[kind]:
                    first = result.seen[kind][raw_id]
                    problems.add(where, "id", f"duplicate id {_short(raw_id)} (also at {first})")
                    continue
                # Even an invalid row's id counts as present, so that rows referring
                # to it are not reported a second time as dangling.
                result.seen[kind][raw_id] = where
            try:
                row = model.model_validate(raw, context={_UNITS: units})
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    problems.add(where, _field(error), _describe(error, model))
                continue
            rules = row.problems()
            for field, problem in rules:
                problems.add(where, field, problem)
            if not rules:
                result.rows[kind][row.id] = (where, row)
    return result


def _field(error: Mapping[str, Any]) -> str | None:
    return ".".join(str(part) for part in error["loc"]) or None


def _describe(error: Mapping[str, Any], model: type[_Row]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return f"unknown field: expected {', '.join(model.model_fields)}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _formatter(currency: str) -> Callable[[int], str]:
    return lambda minor: Money(minor=minor, currency=currency).plain()


# --- checking against the ledger --------------------------------------------------------


async def _check_references(
    s: AsyncSession, batch: _Batch, problems: _Problems, *, lock: bool
) -> _Known:
    """References resolve within the import or to rows already in the ledger, which the
    import may not undo (see `_check_history`); returns what the ledger holds."""
    known = await _load_known(s, batch, lock=lock)  # first: it may lock what the checks read
    customer_refs: list[tuple[str, str]] = [
        *((where, row.customer) for where, row in batch.of("charges", ChargeRow) if row.customer),
        *((where, row.customer) for where, row in batch.of("subscriptions", SubscriptionRow)),
        *((where, row.customer) for where, row in batch.of("invoices", InvoiceRow)),
    ]
    in_import = set(batch.seen["customers"])
    wanted = {ref for _, ref in customer_refs} - in_import
    known_customers = in_import | await _existing_ids(s, LedgerCustomer, wanted)
    for where, ref in customer_refs:
        if ref not in known_customers:
            problems.add(where, "customer", f"no customer {ref} in this import or in the ledger")
    paid_for = [(w, r.subscription) for w, r in batch.of("charges", ChargeRow) if r.subscription]
    in_import = set(batch.seen["subscriptions"])
    wanted = {ref for _, ref in paid_for} - in_import
    known_subscriptions = in_import | await _existing_ids(s, LedgerSubscription, wanted)
    for where, ref in paid_for:
        if ref not in known_subscriptions:
            problems.add(
                where, "subscription", f"no subscription {ref} in this import or in the ledger"
            )

    charge_refs: list[tuple[str, RefundRow | DisputeRow]] = [
        *batch.of("refunds", RefundRow),
        *batch.of("disputes", DisputeRow),
    ]
    charges = _ChargeView(batch)
    await charges.load(s, {row.charge for _, row in charge_refs} - set(batch.seen["charges"]))
    for where, row in charge_refs:
        if row.charge not in charges:
            problems.add(where, "charge", f"no charge {row.charge} in this import or in the ledger")
            continue
        charge = charges.get(row.charge)
        if charge is None:
            continue  # the charge's own row is invalid and already reported
        if row.currency != charge.currency:
            problems.add(
                where,
                "currency",
                f"is {row.currency} but charge {charge.id} is in {charge.currency}",
            )
        elif isinstance(row, DisputeRow) and row.amount > charge.amount:
            money = _formatter(row.currency)
            problems.add(
                where,
                "amount",
                f"{money(row.amount)} is more than charge {charge.id}'s {money(charge.amount)}",
            )
    _check_history(batch, known, problems)
    await _check_refund_totals(batch, charges, known, problems)
    return known


@dataclass(frozen=True)
class _Charge:
    id: str
    currency: str
    amount: int
    amount_refunded: int
    where: str | None  # the charge's row in this import, if it is in it


class _ChargeView:
    """Charges as they will be after the import: its rows over the ledger's."""

    def __init__(self, batch: _Batch) -> None:
        self._batch = batch
        self._ledger: dict[str, _Charge] = {}

    async def load(self, s: AsyncSession, ids: set[str]) -> None:
        for chunk in _chunks(ids):
            for row in await s.scalars(select(LedgerCharge).where(_among(LedgerCharge.id, chunk))):
                self._ledger[row.id] = _Charge(
                    row.id, row.currency, row.amount, row.amount_refunded, None
                )

    def __contains__(self, charge_id: str) -> bool:
        return charge_id in self._batch.seen["charges"] or charge_id in self._ledger

    def get(self, charge_id: str) -> _Charge | None:
        found = self._batch.rows["charges"].get(charge_id)
        if found is not None:
            where, row = found
            assert isinstance(row, ChargeRow)
            return _Charge(row.id, row.currency, row.amount, row.amount_refunded, where)
        return self._ledger.get(charge_id)


async def _check_refund_totals(
    batch: _Batch, charges: _ChargeView, known: _Known, problems: _Problems
) -> None:
    """After the import, every charge's refunds add up to what it has refunded.

    The refunds counted are the ledger's (the bot's among them), replaced or joined by
    the import's, so refunds may arrive in a later file than their charges. A charge
    the import gives refunds has refunded exactly their total; any other charge at
    least the total of those the ledger holds.
    """
    imported = {
        row.id: (where, row)
        for where, row in batch.of("refunds", RefundRow)
        if row.id not in known.aliases
    }
    listed = {row.charge for _, row in batch.of("refunds", RefundRow)}
    charge_ids = (listed | set(batch.rows["charges"])) - known.flagged
    totals: dict[str, dict[str, tuple[int, str]]] = {cid: {} for cid in charge_ids}
    for refund in known.refunds.values():
        if refund.charge_id in totals:
            totals[refund.charge_id][refund.id] = (refund.amount, refund.currency)
    for refund_id, (_, row) in imported.items():
        if row.charge in totals:
            totals[row.charge][refund_id] = (row.amount, row.currency)

    for charge_id, refunds in sorted(totals.items()):
        if not refunds:  # most imported charges: nothing to add up
            continue
        charge = charges.get(charge_id)
        if charge is None:
            continue
        if any(cur != charge.currency for _, cur in refunds.values()):
            continue  # mixed currencies: reported already
        total = sum(amount for amount, _ in refunds.values())
        exact = charge_id in listed
        if total == charge.amount_refunded or (not exact and total < charge.amount_refunded):
            continue
        money = _formatter(charge.currency)
        ids = _ids(refunds, known)
        if charge.where is not None:
            problems.add(
                charge.where,
                "amount_refunded",
                f"is {money(charge.amount_refunded)} but the charge's refunds ({ids}) add up to {money(total)}",
            )
        else:
            where = next(w for w, r in imported.values() if r.charge == charge_id)
            problems.add(
                where,
                "amount",
                f"charge {charge_id} has refunded {money(charge.amount_refunded)} in the ledger but its refunds ({ids}) add up to {money(total)}",
            )


def _ids(refunds: Iterable[str], known: _Known, shown: int = 5) -> str:
    """Refund IDs for a message, the bot's marked: a charge can have thousands."""
    names = [f"{r} by the bot" if r in known.bot_refunds else r for r in sorted(refunds)]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


# --- history: what an import may not undo -----------------------------------------------
#
# An export is a snapshot of the business's system, possibly older than what the bot
# did since (a refund, a capture, a void, a cancellation). Importing it must not make
# the bot forget: money refunded or captured never goes down, states never go back,
# amounts, currencies and owners never change, and the bot's own records stay as the
# bot wrote them. A row that would do otherwise is refused, naming what the ledger
# holds; fields the file leaves empty keep the ledger's value.

# Which statuses an import may move a row to from each status in the ledger.
_CHARGE_NEXT: dict[str, set[str]] = {
    ChargeStatus.authorized: set(ChargeStatus),
    ChargeStatus.succeeded: {"succeeded", "partially_refunded", "refunded", "disputed"},
    ChargeStatus.partially_refunded: {"partially_refunded", "refunded", "disputed"},
    ChargeStatus.refunded: {"refunded", "disputed"},
    # Back to the refund states only once every dispute of the charge is won: a lost
    # dispute has already given the money back.
    ChargeStatus.disputed: {"disputed", "succeeded", "partially_refunded", "refunded"},
    ChargeStatus.failed: {"failed"},
    ChargeStatus.voided: {"voided"},
}
_SUBSCRIPTION_FINAL = {SubscriptionStatus.canceled}
_INVOICE_NEXT: dict[str, set[str]] = {
    InvoiceStatus.draft: set(InvoiceStatus),
    InvoiceStatus.open: {"open", "paid", "void", "uncollectible"},
    InvoiceStatus.uncollectible: {"uncollectible", "paid", "void"},
    InvoiceStatus.paid: {"paid"},
    InvoiceStatus.void: {"void"},
}
_DISPUTE_NEXT: dict[str, set[str]] = {
    DisputeStatus.needs_response: set(DisputeStatus),
    DisputeStatus.under_review: {"under_review", "won", "lost"},
    DisputeStatus.won: {"won"},
    DisputeStatus.lost: {"lost"},
}


@dataclass
class _Known:
    """What the ledger holds for the import's rows, and what the bot itself did to them."""

    rows: dict[str, dict[str, Any]]  # kind -> id -> the table row before the import
    ops: dict[tuple[str, str], list[LedgerOperation]]  # (action, target id) -> the bot's
    refunds: dict[str, LedgerRefund]  # the ledger's refunds of the charges concerned
    bot_refunds: dict[str, LedgerOperation]  # refund id -> the bot's action that made it
    disputes: dict[str, dict[str, str]]  # charge id -> dispute id -> status, after the import
    # kind -> id -> columns where the ledger's value stays (an empty field, the bot's own).
    keep: dict[str, dict[str, dict[str, Any]]]
    aliases: dict[str, str]  # an imported refund id -> the bot's refund it is the same as
    flagged: set[str]  # charges already refused: their totals are not reported again

    def by_bot(self, action: str, target_id: str) -> str:
        """` (by the bot, <key>)` if the bot did `action` to the target, else nothing."""
        ops = self.ops.get((action, target_id))
        return f" (by the bot, {_short(ops[-1].idempotency_key)})" if ops else ""


async def _load_known(s: AsyncSession, batch: _Batch, *, lock: bool) -> _Known:
    """Read, and lock against the bot's actions until the import commits, the rows it checks.

    The locks matter on PostgreSQL: without them a refund committed between this read and
    the import's write would be overwritten by the values checked before it. Rows are
    locked in one order (kind, then id) so that two imports cannot deadlock.
    """
    imported_refunds = batch.of("refunds", RefundRow)
    charge_ids = set(batch.rows["charges"]) | {row.charge for _, row in imported_refunds}
    charge_ids |= {row.charge for _, row in batch.of("disputes", DisputeRow)}
    rows: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        ids = charge_ids if kind == "charges" else set(batch.rows[kind])
        locked = await _rows(s, ROWS[kind].table, ids, lock=lock)
        rows[kind] = {i: locked[i] for i in batch.rows[kind] if i in locked}
    targets = charge_ids | set(batch.rows["subscriptions"]) | set(batch.rows["customers"])
    ops: dict[tuple[str, str], list[LedgerOperation]] = {}
    for chunk in _chunks(targets):
        query = select(LedgerOperation).where(_among(LedgerOperation.target_id, chunk))
        for op in await s.scalars(query.order_by(LedgerOperation.created)):
            ops.setdefault((op.action, op.target_id), []).append(op)
    refunds: dict[str, LedgerRefund] = {}
    for chunk in _chunks(charge_ids | {row.id for _, row in imported_refunds}):
        query = select(LedgerRefund).where(
            _among(LedgerRefund.charge_id, chunk) | _among(LedgerRefund.id, chunk)
        )
        refunds.update({r.id: r for r in await s.scalars(query)})
    disputes: dict[str, dict[str, str]] = {}
    disputed = [cid for cid, row in rows["charges"].items() if row.status == "disputed"]
    for chunk in _chunks(disputed):
        query = select(LedgerDispute).where(_among(LedgerDispute.charge_id, chunk))
        for d in await s.scalars(query):
            disputes.setdefault(d.charge_id, {})[d.id] = d.status
    for _, row in batch.of("disputes", DisputeRow):
        disputes.setdefault(row.charge, {})[row.id] = row.status.value
    bot_refunds = {
        op.result_id: op for (action, _), found in ops.items() if action == "refund" for op in found
    }
    return _Known(rows, ops, refunds, bot_refunds, disputes, {k: {} for k in KINDS}, {}, set())


async def _rows(s: AsyncSession, table: Any, ids: set[str], *, lock: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in _chunks(ids):
        query = select(table).where(_among(table.id, chunk))
        query = query.with_for_update() if lock else query
        found.update({r.id: r for r in await s.scalars(query)})
    return found


def _check_history(batch: _Batch, known: _Known, problems: _Problems) -> None:
    """Refuse rows that would undo what the ledger holds; note the values it keeps."""
    for kind, check in (
        ("customers", _customer_history),
        ("charges", _charge_history),
        ("refunds", _refund_history),
        ("subscriptions", _subscription_history),
        ("invoices", _invoice_history),
        ("disputes", _dispute_history),
    ):
        for where, row in batch.rows[kind].values():
            old = known.rows[kind].get(row.id)
            found = check(row, old, known) if old is not None else []
            if kind == "refunds" and old is None:
                found = _refund_alias(row, known)
            for field, problem in found:
                problems.add(where, field, problem)
            if found and kind == "charges":
                known.flagged.add(row.id)


_Found = list[tuple[str, str]]


def _fixed(row: Any, old: Any, what: str, *columns: str) -> _Found:
    """Columns that never change once a row is in the ledger (currency first)."""
    for column in columns:
        new, before = getattr(row, column), getattr(old, column)
        if new == before:
            continue
        if column == "currency":
            return [(column, f"is {new} but {what} is in {before} in the ledger: it cannot change")]
        money = _formatter(old.currency)
        return [
            (
                column,
                f"is {money(new)} but {what} is {money(before)} in the ledger: it cannot change",
            )
        ]
    return []


def _owner(row: Any, old: Any, known: _Known, kind: str, field: str, what: str) -> _Found:
    """The customer or charge a row belongs to: kept when left empty, never changed."""
    column = f"{field}_id"
    new, before = getattr(row, field), getattr(old, column)
    if before is None or new == before:
        return []
    if new is None:
        known.keep[kind].setdefault(row.id, {})[column] = before
        return []
    return [
        (
            field,
            f"{what} belongs to {field} {before} in the ledger and cannot move to {_short(new)}",
        )
    ]


def _charge_history(row: ChargeRow, old: LedgerCharge, known: _Known) -> _Found:
    what = f"charge {row.id}"
    found = _fixed(row, old, what, "currency", "amount") or _owner(
        row, old, known, "charges", "customer", what
    )
    if found:
        return found
    money = _formatter(old.currency)
    captured_by_bot = known.by_bot("capture", row.id)
    if row.captured < old.amount_captured:
        return [
            (
                "amount_captured",
                f"is {money(row.captured)} but {money(old.amount_captured)} of {what} was captured"
                f"{captured_by_bot}: an import never lowers what was captured",
            )
        ]
    if captured_by_bot and row.captured != old.amount_captured:
        return [
            (
                "amount_captured",
                f"is {money(row.captured)} but {money(old.amount_captured)} of {what} was captured"
                f"{captured_by_bot}: write amount_captured {money(old.amount_captured)}",
            )
        ]
    if row.amount_refunded < old.amount_refunded:
        refunds = [r.id for r in known.refunds.values() if r.charge_id == row.id]
        listed = f" ({_ids(refunds, known)})" if refunds else ""
        return [
            (
                "amount_refunded",
                f"is {money(row.amount_refunded)} but {what} has refunded "
                f"{money(old.amount_refunded)}{listed} in the ledger: an import never lowers what "
                f"was refunded; leave the row out, or write amount_refunded "
                f"{money(old.amount_refunded)} once your system has these refunds",
            )
        ]
    before, after = old.status, row.status.value
    by = known.by_bot("void", row.id) if before == ChargeStatus.voided else ""
    if after not in _CHARGE_NEXT.get(before, {before}):
        return [
            ("status", f"is {after} but {what} is {before}{by} in the ledger: it cannot go back")
        ]
    if before == ChargeStatus.disputed and after != before:
        open_disputes = sorted(
            d for d, status in known.disputes.get(row.id, {}).items() if status != "won"
        )
        if open_disputes:
            return [
                (
                    "status",
                    f"is {after} but {what} is disputed ({', '.join(open_disputes[:5])} not won): "
                    "it stays disputed",
                )
            ]
    return []


def _same_charge(charge: str, held: str, what: str) -> _Found:
    if charge == held:
        return []
    return [
        ("charge", f"{what} belongs to charge {held} in the ledger and cannot move to {charge}")
    ]


def _refund_history(row: RefundRow, old: LedgerRefund, known: _Known) -> _Found:
    what = f"refund {row.id}"
    found = _same_charge(row.charge, old.charge_id, what) or _fixed(
        row, old, what, "currency", "amount"
    )
    if not found and row.id in known.bot_refunds:
        # The bot's refund stays as the bot wrote it: its reason and its time.
        known.keep["refunds"][row.id] = {"reason": old.reason, "created": old.created}
    return found


def _refund_alias(row: RefundRow, known: _Known) -> _Found:
    """A new refund that is the business's own record of a refund the bot forwarded to it."""
    for op in known.ops.get(("refund", row.charge), ()):
        if op.external_ref != row.id:
            continue
        mine = known.refunds.get(op.result_id)
        if mine is None:
            continue
        if (mine.amount, mine.currency) != (row.amount, row.currency):
            money = _formatter(mine.currency)
            return [
                (
                    "amount",
                    f"refund {row.id} is your reference for the bot's refund {mine.id} of "
                    f"{money(mine.amount)}: it cannot differ",
                )
            ]
        known.aliases[row.id] = mine.id
    return []


def _customer_history(row: CustomerRow, old: LedgerCustomer, known: _Known) -> _Found:
    if not known.by_bot("tax_id", row.id) or not old.tax_id_value:
        return []
    kind, value = row.checked_tax_id()
    if value is None:
        known.keep["customers"][row.id] = {
            "tax_id_type": old.tax_id_type,
            "tax_id_value": old.tax_id_value,
        }
    elif (kind, value) != (old.tax_id_type, old.tax_id_value):
        return [
            (
                "tax_id",
                f"is {value} but the bot set {old.tax_id_value}{known.by_bot('tax_id', row.id)}: "
                "leave tax_id empty to keep it",
            )
        ]
    return []


def _subscription_history(row: SubscriptionRow, old: LedgerSubscription, known: _Known) -> _Found:
    what = f"subscription {row.id}"
    found = _fixed(row, old, what, "currency") or _owner(
        row, old, known, "subscriptions", "customer", what
    )
    if found:
        return found
    by = known.by_bot("cancel", row.id)
    if old.status in _SUBSCRIPTION_FINAL and row.status != old.status:
        return [
            (
                "status",
                f"is {row.status.value} but {what} is {old.status}{by} in the ledger: it stays canceled",
            )
        ]
    if (
        by
        and old.cancel_at_period_end
        and not row.cancel_at_period_end
        and row.status != SubscriptionStatus.canceled  # the period ended: that is the cancel
    ):
        return [
            (
                "cancel_at_period_end",
                f"is false but {what} is set to cancel at period end{by}: an import cannot undo it",
            )
        ]
    if old.canceled_at is not None and (row.canceled_at is None or by):
        known.keep["subscriptions"][row.id] = {"canceled_at": old.canceled_at}
    return []


def _invoice_history(row: InvoiceRow, old: LedgerInvoice, known: _Known) -> _Found:
    what = f"invoice {row.id}"
    found = _fixed(row, old, what, "currency") or _owner(
        row, old, known, "invoices", "customer", what
    )
    if found:
        return found
    if old.status != InvoiceStatus.draft:
        found = _fixed(row, old, what, "amount_due")
        if found:
            return found
    money = _formatter(old.currency)
    if row.paid < old.amount_paid:
        return [
            (
                "amount_paid",
                f"is {money(row.paid)} but {money(old.amount_paid)} of {what} is paid in the ledger: "
                "an import never lowers what was paid",
            )
        ]
    if row.status.value not in _INVOICE_NEXT.get(old.status, {old.status}):
        return [
            (
                "status",
                f"is {row.status.value} but {what} is {old.status} in the ledger: it cannot go back",
            )
        ]
    return []


def _dispute_history(row: DisputeRow, old: LedgerDispute, known: _Known) -> _Found:
    what = f"dispute {row.id}"
    found = _same_charge(row.charge, old.charge_id, what) or _fixed(
        row, old, what, "currency", "amount"
    )
    if found:
        return found
    if row.status.value not in _DISPUTE_NEXT.get(old.status, {old.status}):
        return [
            (
                "status",
                f"is {row.status.value} but {what} is {old.status} in the ledger: it cannot go back",
            )
        ]
    return []


async def _existing_ids(s: AsyncSession, table: Any, ids: set[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(await s.scalars(select(table.id).where(_among(table.id, chunk))))
    return found


class _IdList(ColumnElement[str]):
    """A list of IDs as one JSON parameter, read back as rows by the database: a
    100,000-row import's look-ups are a few queries, not hundreds of `IN (?, ?, ...)`
    with a parameter each (capped at 999 by old SQLite, and slow to compile)."""

    inherit_cache = False

    def __init__(self, ids: list[str]) -> None:
        self.ids = json.dumps(ids)


@compiles(_IdList, "sqlite")
def _ids_sqlite(element: _IdList, compiler: Any, **kw: Any) -> str:
    ids = compiler.process(bindparam(None, element.ids, type_=String), **kw)
    return f"(SELECT value FROM json_each({ids}))"


@compiles(_IdList, "postgresql")
def _ids_postgresql(element: _IdList, compiler: Any, **kw: Any) -> str:
    ids = compiler.process(bindparam(None, element.ids, type_=String), **kw)
    return f"(SELECT json_array_elements_text(CAST({ids} AS json)))"


def _among(column: Any, ids: list[str]) -> ColumnElement[bool]:
    """`column IN ids`, with `ids` as one parameter."""
    return column.op("IN", is_comparison=True)(_IdList(ids))  # type: ignore[no-any-return]


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(ids)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


# --- writing ----------------------------------------------------------------------------


async def _import(
    db: Database, raw: dict[str, Iterable[_Raw]], *, units: str, on_write: OnWrite | None = None
) -> ImportSummary:
    problems = _Problems()
    batch = _validate(raw, units, problems)
    raw.clear()  # the file's parsed objects are not needed past validation
    await _prepare_staging(db)
    for _ in range(_ATTEMPTS):
        # Checked without the write lock; what the checks read is read again, locked, in
        # the one short transaction that makes the import visible, and compared there.
        async with db.read() as s:
            known = await _check_references(s, batch, problems, lock=False)
        if problems.lines:
            raise LedgerImportError(problems.lines)
        import_id = f"imp_{uuid.uuid4().hex[:20]}"
        try:
            summary, counts = await _stage(db, import_id, batch, known)
            try:
                async with db.write() as s:
                    again = await _load_known(s, _in_ledger(batch, known), lock=True)
                    if _digest(again, again) != _digest(known, again):
                        raise _LedgerChanged
                    await _publish(s, import_id, counts)
                    if on_write is not None:
                        await on_write(s, _new_money(batch, known, import_id))
            except IntegrityError:  # a row checked as new was written meanwhile
                continue
            except _LedgerChanged:
                continue
            return summary
        finally:
            await _unstage(db, import_id)
    raise LedgerImportError(
        [f"the ledger kept changing while the import ran ({_ATTEMPTS} tries): run it again"]
    )


# --- staging: written in short transactions, made visible in one ------------------------
#
# A large import used to hold the write lock for its whole run, so a manager's approval
# waiting behind it ran into the busy timeout. Rows are now staged under an import ID,
# each batch its own short transaction, then copied by `INSERT ... SELECT` (and
# `UPDATE ... FROM`) in one short transaction that also re-checks what the import read.
# A crash leaves only staged rows, which no reader looks at; the next import removes
# those older than STALE_STAGING.

_ATTEMPTS = 3
_STAGE_BATCH = 2_000
STALE_STAGING = timedelta(hours=1)
_STAGING = MetaData()


def _staged_table(table: Table) -> Table:
    return Table(
        f"{table.name}_staged",
        _STAGING,
        Column("import_id", String(40), index=True),
        Column("is_new", Boolean),
        Column("staged_at", UTCDateTime),
        *(Column(c.name, c.type) for c in table.columns),
    )


STAGED: dict[str, Table] = {
    kind: _staged_table(model.table.__table__)  # type: ignore[attr-defined]
    for kind, model in ROWS.items()
}


class _LedgerChanged(Exception):
    """What the checks read changed before the import could be made visible."""


async def _prepare_staging(db: Database) -> None:
    """Create the staging tables if needed and remove what crashed imports left.

    They mirror the ledger tables' columns, which a later migration may change: a staging
    table whose columns differ (made before an upgrade) holds nothing worth keeping, and is
    made again."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_match_staging)
    cutoff = datetime.now(UTC) - STALE_STAGING
    for staged in STAGED.values():
        await _delete_staged(db, staged, staged.c.staged_at < cutoff)


def _match_staging(conn: Connection) -> None:
    have = inspect(conn)
    for staged in STAGED.values():
        if have.has_table(staged.name):
            columns = {c["name"] for c in have.get_columns(staged.name)}
            if columns == set(staged.c.keys()):
                continue
            staged.drop(conn)
        staged.create(conn)


async def _unstage(db: Database, import_id: str) -> None:
    for staged in STAGED.values():
        await _delete_staged(db, staged, staged.c.import_id == import_id)


async def _delete_staged(db: Database, staged: Table, where: ColumnElement[bool]) -> None:
    """Delete staged rows a batch per transaction: other writers go in between."""
    while True:
        some = select(staged.c.id).where(where).limit(_STAGE_BATCH * 5).scalar_subquery()
        async with db.write() as s:
            deleted = await s.execute(delete(staged).where(where, staged.c.id.in_(some)))
        if not deleted.rowcount:  # type: ignore[attr-defined]
            return


def _full_columns(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Every column of `table`: `values`, else the column's scalar default, else None."""
    full = {}
    for column in table.columns:
        if column.name in values:
            full[column.name] = values[column.name]
        else:
            default = column.default
            full[column.name] = default.arg if default is not None and default.is_scalar else None
    if "name_key" in full:  # kept with `name` on every write (the ORM does it by @validates)
        full["name_key"] = folded(full["name"])[:200] if full.get("name") else None
    return full


async def _stage(
    db: Database, import_id: str, batch: _Batch, known: _Known
) -> tuple[ImportSummary, dict[str, tuple[int, int]]]:
    """Stage every row with its final column values; returns the summary and, per kind,
    how many rows are (new, updates)."""
    summary = ImportSummary()
    counts: dict[str, tuple[int, int]] = {}
    now = datetime.now(UTC)
    for kind in KINDS:
        table: Table = ROWS[kind].table.__table__  # type: ignore[attr-defined]
        staged, existing, keep = STAGED[kind], known.rows[kind], known.keep[kind]
        rows = [row for _, row in batch.rows[kind].values()]
        setattr(summary, kind, len(rows))
        if kind == "refunds":  # the bot's own refunds, named by the business: kept as one
            rows = [row for row in rows if row.id not in known.aliases]
        new = updated = 0
        for start in range(0, len(rows), _STAGE_BATCH):
            values = []
            for row in rows[start : start + _STAGE_BATCH]:
                columns = {**row.columns(), **keep.get(row.id, {})}
                current = existing.get(row.id)
                if current is None:
                    if "created" in columns and columns["created"] is None:
                        columns["created"] = now
                    new += 1
                else:
                    # No `created` in the file means "unchanged", not "now"; columns the
                    # file does not have keep the ledger's values.
                    if columns.get("created", 0) is None:
                        del columns["created"]
                    columns = {**{c.name: getattr(current, c.key) for c in table.columns},
                               **columns}  # fmt: skip
                    updated += 1
                values.append({
                    **_full_columns(table, columns),
                    "import_id": import_id, "is_new": current is None, "staged_at": now,
                })  # fmt: skip
            async with db.write() as s:  # short: other writers go between batches
                await s.execute(insert(staged), values)
        counts[kind] = (new, updated)
    return summary, counts


async def _publish(s: AsyncSession, import_id: str, counts: Mapping[str, tuple[int, int]]) -> None:
    """Copy the staged rows into the ledger, type by type so that rows exist before the
    rows that point at them."""
    for kind in KINDS:
        new, updated = counts.get(kind, (0, 0))
        table: Table = ROWS[kind].table.__table__  # type: ignore[attr-defined]
        staged = STAGED[kind]
        names = [c.name for c in table.columns]
        mine = staged.c.import_id == import_id
        if new:
            # In key order: the primary key's B-tree is appended to, not split all over.
            query = select(*(staged.c[n] for n in names)).where(mine, staged.c.is_new)
            query = query.order_by(staged.c.id)
            await s.execute(insert(table).from_select(names, query))
        if updated:
            changes = {n: staged.c[n] for n in names if n != "id"}
            await s.execute(
                update(table)
                .values(changes)
                .where(table.c.id == staged.c.id, mine, staged.c.is_new.is_(False))
            )


def _in_ledger(batch: _Batch, known: _Known) -> _Batch:
    """The part of `batch` whose checks read rows the ledger already holds."""
    new_charges = set(batch.rows["charges"]) - set(known.rows["charges"])
    rows: dict[str, dict[str, tuple[str, _Row]]] = {}
    for kind in KINDS:
        rows[kind] = {
            i: (where, row)
            for i, (where, row) in batch.rows[kind].items()
            if i in known.rows[kind]
            or (kind in ("refunds", "disputes") and getattr(row, "charge", None) not in new_charges)
        }
    return _Batch(rows=rows, seen=batch.seen)


def _digest(known: _Known, scope: _Known) -> tuple[Any, ...]:
    """What the checks relied on, limited to the rows that `scope` found in the ledger."""

    def values(row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, c.key) for c in row.__table__.columns)

    charges = set(scope.rows["charges"]) | {r.charge_id for r in scope.refunds.values()}
    targets = {t for _, t in scope.ops} | charges | set(scope.rows["customers"])
    targets |= set(scope.rows["subscriptions"])
    return (
        {k: {i: values(r) for i, r in rows.items() if i in scope.rows[k]} for k, rows in known.rows.items()},
        {k: [(o.idempotency_key, o.result_id, o.external_ref) for o in ops]
         for k, ops in known.ops.items() if k[1] in targets},
        {i: values(r) for i, r in known.refunds.items() if r.charge_id in charges or i in scope.refunds},
        {c: d for c, d in known.disputes.items() if c in charges},
    )  # fmt: skip


def _new_money(batch: _Batch, known: _Known, import_id: str) -> NewMoney:
    """The payments and refunds the import adds (rows the ledger did not hold)."""
    charges = [r for _, r in batch.of("charges", ChargeRow) if r.id not in known.rows["charges"]]
    refunds = [
        r
        for _, r in batch.of("refunds", RefundRow)
        if r.id not in known.rows["refunds"] and r.id not in known.aliases
    ]
    staged_charges, staged_refunds = STAGED["charges"].c, STAGED["refunds"].c
    return NewMoney(
        payments=[c.id for c in charges if c.captured > 0],
        refunds=[(r.charge, r.id, r.reason) for r in refunds],
        payment_rows=select(
            staged_charges.id.label("charge_id"), staged_charges.id.label("source_id"),
            null().label("reason"),
        ).where(staged_charges.import_id == import_id, staged_charges.is_new,
                staged_charges.amount_captured > 0),
        refund_rows=select(
            staged_refunds.charge_id, staged_refunds.id.label("source_id"), staged_refunds.reason
        ).where(staged_refunds.import_id == import_id, staged_refunds.is_new),
    )  # fmt: skip


_ECHO = reprlib.Repr()  # keyword arguments need Python 3.12
_ECHO.maxlevel, _ECHO.maxlist, _ECHO.maxdict = 2, 3, 3
_ECHO.maxstring = _ECHO.maxother = ECHO_MAX


def _echo(value: Any) -> str:
    """`value` quoted for an error message, at most about ECHO_MAX characters of it."""
    try:
        text = _ECHO.repr(value)  # reprlib stops at any depth, so deep input cannot recurse
    except ValueError:  # an integer past Python's digit limit
        return "a number too long to show"
    return text if len(text) <= ECHO_MAX + 2 else text[: ECHO_MAX - 1] + "…"


def _short(text: str) -> str:
    """`text` as it is, or its first ECHO_MAX characters and an ellipsis."""
    return text if len(text) <= ECHO_MAX else text[: ECHO_MAX - 1] + "…"


def _clip(message: str) -> str:
    """Shorten what other modules' messages quote from the input, and the message itself."""
    message = _QUOTED.sub(
        lambda m: m[0] if len(m[0]) <= ECHO_MAX + 2 else m[0][: ECHO_MAX - 1] + "…" + m[0][0],
        message,
    )
    return message if len(message) <= _PROBLEM_MAX else message[: _PROBLEM_MAX - 1] + "…"


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
