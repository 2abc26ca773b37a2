"""Who issues documents and how they look (`branding.toml`), and tax rates (`tax.toml`).

Both are read from the configuration folder (`bot.settings.config_folder`). Every
key is validated at start. Without branding.toml the seller is a placeholder, and
issuing a document is refused (`require_seller`): a numbered document is permanent,
so it must never name "Your Company Ltd". Without tax.toml no tax is charged.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import UserError
from bot.settings import (
    ConfigError,
    config_dir,
    default_config_dir,
    describe_validation_error,
    read_toml,
)

Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    """A legal entity that issues documents: numbering is gapless per entity and document type.

    The defaults of `legal_name` and `country` are placeholders: documents are issued
    only once both are written in branding.toml (`has_seller`).
    """

    legal_name: str = "Your Company Ltd"
    address: list[str] = Field(default_factory=list, description="postal address, one line each")
    country: Country = Field("GB", description="decides the tax rules: reverse charge, rates")
    vat_id: str | None = Field(None, description="VAT/GST registration printed on every document")
    registration: str | None = Field(None, description="company register entry, e.g. HRB 12345 B")
    email: str | None = Field(None, description="shown on documents; the Reply-To of emails")
    website: str | None = None
    logo: Path | None = Field(None, description="PNG or JPEG, relative to the config folder")
    primary_colour: Colour = "#1F3A5F"
    accent_colour: Colour = "#E8EEF5"
    footer: str | None = Field(None, description="one line under every page: bank, register, ...")
    payment_terms_days: int = Field(14, ge=0, le=365)
    invoice_prefix: str = Field("INV", pattern=r"^[A-Z0-9-]{1,12}$")
    receipt_prefix: str = Field("RCT", pattern=r"^[A-Z0-9-]{1,12}$")
    credit_note_prefix: str = Field("CN", pattern=r"^[A-Z0-9-]{1,12}$")

    @property
    def has_seller(self) -> bool:
        """Are the seller's legal name and country written, not the built-in placeholders?"""
        # Set keys, not values: a file that leaves `country` out must not issue as "GB".
        return bool(self.legal_name.strip()) and {"legal_name", "country"} <= self.model_fields_set


class Branding(_Strict):
    default_entity: str = "default"
    entities: dict[str, Entity] = Field(default_factory=lambda: {"default": Entity()})
    # Which entity issues documents for which gateway; others use default_entity.
    gateways: dict[str, str] = Field(default_factory=dict)
    # Receipts after payments and credit notes after refunds, per gateway ("*" = every gateway).
    receipts: list[str] = Field(default_factory=lambda: ["*"])
    credit_notes: list[str] = Field(default_factory=lambda: ["*"])
    # When a customer's name, address or tax ID changes: "offer" a credit note and a new
    # document for each one issued this month (a `reissue <number>` button), or do it at once.
    reissue: Literal["offer", "automatic"] = "offer"
    # Languages documents are written in; any other customer locale gets `fallback_language`.
    fallback_language: str = "en"

    @field_validator("entities")
    @classmethod
    def _keys(cls, value: dict[str, Entity]) -> dict[str, Entity]:
        for key in value:
            if not key.replace("-", "").replace("_", "").isalnum() or len(key) > 64:
                raise ValueError(f"entity key {key!r}: letters, digits, - and _ only, at most 64")
        return value

    @model_validator(mode="after")
    def _known_entities(self) -> Branding:
        for name in [self.default_entity, *self.gateways.values()]:
            if name not in self.entities:
                raise ValueError(f"entity {name!r} is not defined under [entities]")
        # A number alone names a document: no two series may print the same one.
        prefixes = [
            p
            for e in self.entities.values()
            for p in (e.invoice_prefix, e.receipt_prefix, e.credit_note_prefix)
        ]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("every entity needs its own invoice, receipt and credit note prefixes")
        return self

    def entity_for(self, gateway: str) -> tuple[str, Entity]:
        key = self.gateways.get(gateway, self.default_entity)
        return key, self.entities[key]

    def automatic(self, kind: str, gateway: str) -> bool:
        """Are receipts (kind "receipt") or credit notes ("credit_note") issued for this gateway?"""
        enabled = self.receipts if kind == "receipt" else self.credit_notes
        return "*" in enabled or gateway in enabled


class TaxConfig(_Strict):
    # Standard rate in percent per country where we charge tax; elsewhere no tax is charged.
    rates: dict[Country, Decimal] = Field(default_factory=dict)
    # What the tax is called per country on documents (default VAT).
    names: dict[Country, str] = Field(
        default_factory=lambda: {"AU": "GST", "NZ": "GST", "SG": "GST"}
    )

    @field_validator("rates")
    @classmethod
    def _sane(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for country, rate in value.items():
            if not Decimal(0) <= rate < Decimal(100):
                raise ValueError(f"{country}: rate {rate} is not a percentage between 0 and 100")
        return value


class SellerMissing(UserError):
    """Documents cannot be issued: branding.toml does not name the seller yet."""

    def __init__(self, message: str) -> None:
        super().__init__("no_seller", message)


def require_seller(branding: Branding, gateway: str) -> None:
    """Raise SellerMissing, naming the file to write, unless `gateway`'s entity names a seller."""
    key, entity = branding.entity_for(gateway)
    if entity.has_seller:
        return
    folder = config_dir()
    path = (folder or default_config_dir()) / "branding.toml"
    if folder is not None and path.is_file():
        raise SellerMissing(
            f"documents need a seller: set legal_name and country under [entities.{key}] in {path}"
        )
    raise SellerMissing(f"documents need a seller: write {path} (chargedesk init writes one)")


def seller_warnings(branding: Branding) -> list[str]:
    """The refusal each entity in use would give (the default one, then per gateway), once each."""
    warnings: list[str] = []
    for gateway in ["", *branding.gateways]:  # "" is no mapped gateway: the default entity
        try:
            require_seller(branding, gateway)
        except SellerMissing as exc:
            if exc.message not in warnings:
                warnings.append(exc.message)
    return warnings


def load_branding(directory: Path | None = None) -> Branding:
    """branding.toml of `directory` (default: the configuration folder); defaults without one."""
    folder = directory or config_dir()
    if folder is None:
        return Branding()
    branding = _load(Branding, folder / "branding.toml")
    entities = dict(branding.entities)
    for key, entity in entities.items():
        if entity.logo is None:
            continue
        logo = (folder / entity.logo).resolve()
        if not logo.is_file():
            raise ConfigError(f"{folder / 'branding.toml'}: entities.{key}.logo: no file {logo}")
        entities[key] = entity.model_copy(update={"logo": logo})
    return branding.model_copy(update={"entities": entities})


def load_tax(directory: Path | None = None) -> TaxConfig:
    """tax.toml of `directory` (default: the configuration folder); no tax without one."""
    folder = directory or config_dir()
    if folder is None:
        return TaxConfig()
    return _load(TaxConfig, folder / "tax.toml")


_M = TypeVar("_M", bound=BaseModel)


def _load(model: type[_M], path: Path) -> _M:
    try:
        return model.model_validate(read_toml(path))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from None
