"""Settings from the environment and `chargedesk.toml`, validated at start.

Precedence: explicit overrides (CLI flags) > environment > chargedesk.toml > defaults.
Nested keys in the environment use `__`: `CHARGEDESK_LEDGER__FORWARD_URL`.
Every configuration file (chargedesk.toml, branding.toml, tax.toml, policy.toml) is
read from the one folder `config_folder()` finds, the same way from any directory.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_DIR_ENV = "CHARGEDESK_CONFIG_DIR"
DATA_DIR_ENV = "CHARGEDESK_DATA_DIR"
DEFAULT_DATA_DIR = Path(".chargedesk")

SHARED_SECRET_NEEDED = (
    "required with DATABASE_URL or REDIS_URL, so every process signs billing links, page cookies "
    "and codes with one key: set CHARGEDESK_PORTAL__SECRET to the same value everywhere, made with "
    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
)


class ConfigError(Exception):
    """Configuration that cannot start the bot; the message names the bad key."""


@dataclass(frozen=True)
class ConfigFolder:
    """The folder the configuration files are read from (None: built-in defaults), and why."""

    path: Path | None
    origin: str

    def describe(self) -> str:
        if self.path is None:
            return f"no configuration folder, built-in defaults ({self.origin})"
        return f"configuration from {self.path} ({self.origin})"


# Pinned by `chargedesk shell --demo`: the packaged demo configuration, whatever the environment.
_pinned: ConfigFolder | None = None


def pin_config_folder(path: Path | None, origin: str = "chosen") -> None:
    """Use `path` for the rest of this process (`--demo`); None returns to the lookup."""
    global _pinned
    _pinned = ConfigFolder(path.absolute(), origin) if path is not None else None


def config_folder() -> ConfigFolder:
    """Where the configuration files are: the first of

    1. `CHARGEDESK_CONFIG_DIR` (a folder named there that does not exist is an error);
    2. `<data dir>/config` if it exists, the data dir being `CHARGEDESK_DATA_DIR` or
       `.chargedesk`. A `data_dir` in chargedesk.toml cannot move it: that file is
       itself read from the folder found here;
    3. the repository's `config/` when the package runs from a source checkout;
    4. none: the built-in defaults.

    Remembered per process for each environment and working directory: hot paths do
    not touch the filesystem, and tests may still change the environment.
    """
    if _pinned is not None:
        return _pinned
    named, data_dir = os.environ.get(CONFIG_DIR_ENV, ""), os.environ.get(DATA_DIR_ENV, "")
    return _find(named, data_dir, os.getcwd())


def config_dir() -> Path | None:
    """The configuration folder (see `config_folder`), or None for the built-in defaults."""
    return config_folder().path


def default_config_dir() -> Path:
    """Where `chargedesk init` writes: `CHARGEDESK_CONFIG_DIR`, else `<data dir>/config`."""
    named = os.environ.get(CONFIG_DIR_ENV)
    if named:
        return Path(named).absolute()
    return (Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / "config").absolute()


def forget_config_folder() -> None:
    """Look again on the next call (after `chargedesk init` created the folder)."""
    _find.cache_clear()


def source_checkout() -> Path | None:
    """The repository root when the package runs from one, not from an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    if (root / "config").is_dir() and (root / "pyproject.toml").is_file():
        return root
    return None


@functools.lru_cache(maxsize=32)
def _find(named: str, data_dir: str, cwd: str) -> ConfigFolder:
    if named:
        path = Path(cwd, named)
        if not path.is_dir():
            # Raised, so not remembered: creating the folder fixes it without a restart.
            raise ConfigError(f"{CONFIG_DIR_ENV}={named}: no such folder {path}")
        return ConfigFolder(path, CONFIG_DIR_ENV)
    data = Path(cwd, data_dir or DEFAULT_DATA_DIR) / "config"
    if data.is_dir():
        return ConfigFolder(data, "the data dir's config folder")
    checkout = source_checkout()
    if checkout is not None:
        return ConfigFolder(checkout / "config", "source checkout")
    return ConfigFolder(None, f"no {CONFIG_DIR_ENV}, no {data}")


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the key as the user wrote it."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{source}: {key}: {problem['msg']}")
    return "\n".join(lines)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LedgerSettings(_Section):
    enabled: bool = True
    forward_url: HttpUrl | None = Field(
        None, description="Where refunds, captures, voids and cancellations are sent for approval"
    )
    forward_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for X-ChargeDesk-Signature"
    )
    forward_timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("forward_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class StripeSettings(_Section):
    """Stripe is enabled when `api_key` is set."""

    api_key: SecretStr | None = Field(
        None, description="sk_live_... or sk_test_...; restricted keys work"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="whsec_... of the /webhooks/stripe endpoint"
    )
    webhook_tolerance: int = Field(
        300, ge=1, le=3600, description="seconds a signature stays valid"
    )
    base_url: HttpUrl | None = Field(None, description="API base override, for a local emulator")
    timeout: float = Field(10.0, gt=0, le=120)
    max_retries: int = Field(
        2, ge=0, le=10, description="retries of reads, and of writes with their key"
    )
    dashboard_url: str = "https://dashboard.stripe.com"


class PayPalSettings(_Section):
    """PayPal is enabled when `client_id` and `client_secret` are set."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    environment: Literal["sandbox", "live"] = "sandbox"
    base_url: HttpUrl | None = Field(None, description="API base override, for a local emulator")
    webhook_id: str | None = Field(
        None, description="the webhook's ID, needed to verify deliveries"
    )
    lookback_days: int = Field(
        365, ge=1, le=3 * 365, description="how far transaction search looks for a payer"
    )
    timeout: float = Field(10.0, gt=0, le=120)
    max_retries: int = Field(2, ge=0, le=10)


class WooCommerceSettings(_Section):
    """WooCommerce is enabled when `store_url`, `consumer_key` and `consumer_secret` are set."""

    store_url: HttpUrl | None = Field(
        None, description="the store's Site Address as WordPress knows it: https://shop.example.com"
    )
    consumer_key: str | None = Field(None, description="ck_... of a REST API key (Read/Write)")
    consumer_secret: SecretStr | None = Field(None, description="cs_... of that key")
    webhook_secret: SecretStr | None = Field(
        None, description="the secret of the store's webhooks to /webhooks/woocommerce"
    )
    webhook_tolerance: int = Field(
        2 * 24 * 3600,
        ge=300,
        le=30 * 24 * 3600,
        description="seconds since its resource changed after which a delivery is stale "
        "(WooCommerce signs no timestamp)",
    )
    ca_file: Path | None = Field(
        None, description="CA bundle to trust for the store's certificate (a private CA)"
    )
    timeout: float = Field(10.0, gt=0, le=120)
    write_timeout: float = Field(
        60.0, gt=0, le=300, description="seconds a refund may take: the payment plugin is asked"
    )
    max_retries: int = Field(2, ge=0, le=10, description="retries of reads; writes are read back")

    @field_validator("store_url")
    @classmethod
    def _site_address(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and ("wp-json" in (value.path or "") or value.query):
            raise ValueError("the store's address only (https://shop.example.com), not an API URL")
        return value


class RecurlySettings(_Section):
    """Recurly is enabled when `api_key` is set."""

    api_key: SecretStr | None = Field(
        None, description="a private API key of the site (the key picks the site)"
    )
    region: Literal["us", "eu"] = Field(
        "us", description="where the site lives: us (v3.recurly.com) or eu (v3.eu.recurly.com)"
    )
    subdomain: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="yourcompany of yourcompany.recurly.com: dashboard links, card update page",
    )
    site_url: HttpUrl | None = Field(
        None, description="the site's own address, if not https://<subdomain>.recurly.com"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="the webhook endpoint's signing secret (recurly-signature)"
    )
    webhook_tolerance: int = Field(
        300, ge=1, le=3600, description="seconds a signature stays valid"
    )
    cancel_timeframe: Literal["term_end", "bill_date"] = Field(
        "term_end",
        description="when a cancel at period end ends it: the term's end, or the next bill date",
    )
    base_url: HttpUrl | None = Field(None, description="API base override, for a local emulator")
    timeout: float = Field(10.0, gt=0, le=120)
    max_retries: int = Field(2, ge=0, le=10, description="retries of reads; writes are read back")


class BraintreeSettings(_Section):
    """Braintree is enabled when `merchant_id`, `public_key` and `private_key` are set."""

    merchant_id: str | None = None
    public_key: str | None = None
    private_key: SecretStr | None = None
    environment: Literal["sandbox", "production"] = "sandbox"
    base_url: HttpUrl | None = Field(
        None, description="gateway base override, for a local emulator over plain HTTP"
    )
    webhook_tolerance: int = Field(
        25 * 3600,
        ge=300,
        le=7 * 24 * 3600,
        description="seconds a notification stays valid: Braintree retries hourly for 24 hours",
    )
    timeout: float = Field(10.0, gt=0, le=120)
    max_retries: int = Field(2, ge=0, le=10, description="retries of reads; writes are read back")


class SlackSettings(_Section):
    """Slack is enabled when `bot_token` and `signing_secret` are set."""

    bot_token: SecretStr | None = Field(None, description="xoxb-...")
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = Field(
        None, description="xapp-...: Socket Mode, no public URL needed"
    )
    base_url: HttpUrl | None = Field(None, description="Web API base override, for a test server")
    agents: list[str] = Field(
        default_factory=list, description="user IDs (U...) or user group IDs (S...)"
    )
    managers: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)
    finance: list[str] = Field(default_factory=list, description="who may read the reports")
    helpdesk_channels: list[str] = Field(
        default_factory=list, description="channel IDs whose new messages get a card"
    )
    approvals_channel: str | None = Field(None, description="also post every approval request here")


class DiscordSettings(_Section):
    """Discord is enabled when `token` is set."""

    token: SecretStr | None = Field(None, description="the bot token from the Developer Portal")
    guild_ids: list[int] = Field(
        default_factory=list, description="servers to sync /billing to (instant)"
    )
    agent_roles: list[str] = Field(default_factory=list, description="role names or IDs")
    manager_roles: list[str] = Field(default_factory=list)
    admin_roles: list[str] = Field(default_factory=list)
    finance_roles: list[str] = Field(default_factory=list, description="who may read the reports")
    support_channels: list[int] = Field(
        default_factory=list, description="customer-facing channels: shared"
    )
    approvals_channel: int | None = Field(None, description="also post every approval request here")
    api_base: HttpUrl | None = Field(None, description="REST base override, for a test server")


class _HelpdeskSection(_Section):
    """Shared by every helpdesk: where its API is, how long a delivery's signature stays valid."""

    base_url: HttpUrl | None = Field(None, description="API base override, for a local emulator")
    webhook_tolerance: int = Field(
        300, ge=1, le=3600, description="seconds a signed delivery stays valid"
    )
    timeout: float = Field(10.0, gt=0, le=60)
    # The helpdesk's own agents, by the email it sends for them. Anyone else it sends
    # sees read-only cards and can do nothing that moves money.
    agents: list[str] = Field(default_factory=list, description="agent emails")
    managers: list[str] = Field(default_factory=list, description="manager emails")
    admins: list[str] = Field(default_factory=list, description="admin emails")
    finance: list[str] = Field(
        default_factory=list, description="emails of who may read the reports"
    )


def _script_url(value: str) -> str:
    """A helpdesk SDK's address, fit to stand in a panel page's `script-src` as it is."""
    # It goes into a Content-Security-Policy header whole: no space, quote, `;` or `,`.
    # Plain http only for this machine (a test's stand-in SDK).
    if not _SCRIPT_URL.fullmatch(value) or (
        value.startswith("http://") and not _LOOPBACK.match(value)
    ):
        raise ValueError(
            f"{value!r} is not a script address: https://host[:port]/path (no query, no spaces)"
        )
    return value


_SCRIPT_URL = re.compile(
    r"https?://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?"
    r"(/[A-Za-z0-9._~%/-]*)?"
)
_LOOPBACK = re.compile(r"http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?(/|$)")


class ZendeskSettings(_HelpdeskSection):
    """Zendesk is enabled when `subdomain`, `email` and `api_token` are set."""

    subdomain: str | None = Field(None, description="yourcompany of yourcompany.zendesk.com")
    email: str | None = Field(None, description="the agent the API token belongs to")
    api_token: SecretStr | None = None
    webhook_secret: SecretStr | None = Field(
        None, description="the webhook's signing secret (Admin Center → Webhooks)"
    )
    # The agent panel's signed entry (apps/zendesk, `signedUrls`): Zendesk signs the sidebar's
    # first request with the app's RSA key; these check it.
    app_public_key: str | None = Field(
        None, description="the app's public key, PEM (GET /api/v2/apps/{app_id}/public_key.pem)"
    )
    app_public_key_file: Path | None = Field(None, description="a file holding that PEM instead")
    app_audience: str | None = Field(
        None,
        description="the JWT's aud: https://<subdomain>.zendesk.com/api/v2/apps/installations/"
        "<installation_id>.json",
    )
    zaf_sdk_url: str = Field(
        "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js",
        description="the ZAF SDK the panel's first page loads to ask Zendesk for the ticket",
    )

    @field_validator("zaf_sdk_url")
    @classmethod
    def _zaf_sdk(cls, value: str) -> str:
        return _script_url(value)

    @model_validator(mode="after")
    def _one_public_key(self) -> ZendeskSettings:
        if self.app_public_key is not None and self.app_public_key_file is not None:
            raise ValueError("set app_public_key or app_public_key_file, not both")
        return self


class FreshdeskSettings(_HelpdeskSection):
    """Freshdesk is enabled when `domain` and `api_key` are set."""

    domain: str | None = Field(None, description="yourcompany.freshdesk.com")
    api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = Field(
        None, description="the value the automation rule sends in `webhook_header`"
    )
    webhook_header: str = "X-ChargeDesk-Secret"
    panel_secret: SecretStr | None = Field(
        None,
        description="HMAC key of the agent panel URLs the app's serverless function signs "
        "(the app's secure installation parameter `panel_secret`; 32+ characters)",
    )

    # Freshworks shows an app's page in an iframe of its own CDN, and the panel in an iframe
    # of that page: both must be allowed to frame the panel (developers.freshworks.com,
    # "Solve CORS errors": apps are loaded from d3h0owdjgzys62.cloudfront.net).
    app_frame_origins: list[str] = Field(
        default_factory=lambda: ["https://d3h0owdjgzys62.cloudfront.net"],
        description="origins Freshworks serves app pages from (framed with the panel once "
        "panel_secret and domain are set)",
    )

    @field_validator("panel_secret")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("app_frame_origins")
    @classmethod
    def _frame_origins(cls, values: list[str]) -> list[str]:
        # Each one goes into a Content-Security-Policy header: only a bare https origin may.
        for value in values:
            if not value.startswith("https://") or not _ORIGIN.fullmatch(value):
                raise ValueError(f"{value!r} is not an origin: https://host[:port]")
        return values


class HelpScoutSettings(_HelpdeskSection):
    """Help Scout is enabled when `app_id` and `app_secret` (OAuth client credentials) are set."""

    app_id: SecretStr | None = None
    app_secret: SecretStr | None = None
    secret_key: SecretStr | None = Field(
        None, description="the webhook's / dynamic app's secret key (X-HelpScout-Signature)"
    )


class IntercomSettings(_HelpdeskSection):
    """Intercom is enabled when `access_token` is set."""

    access_token: SecretStr | None = None
    client_secret: SecretStr | None = Field(
        None, description="the app's client secret: X-Hub-Signature and X-Body-Signature"
    )
    admin_id: str | None = Field(None, description="the admin our notes are written as")


class FrontSettings(_HelpdeskSection):
    """Front is enabled when `api_token` is set."""

    api_token: SecretStr | None = None
    app_secret: SecretStr | None = Field(
        None, description="the application's secret: X-Front-Signature and the challenge"
    )
    author_id: str | None = Field(None, description="the teammate our comments are written as")
    plugin_auth_secret: SecretStr | None = Field(
        None,
        description="the plugin's auth secret (Front sends it as ?auth_secret= when it opens the "
        "agent panel)",
    )
    plugin_sdk_url: str = Field(
        "https://dl.frontapp.com/libs/plugin-sdk-1.8.1.min.js",
        description="Front's plugin SDK the plugin page loads to read the conversation's context",
    )

    @field_validator("plugin_sdk_url")
    @classmethod
    def _plugin_sdk(cls, value: str) -> str:
        return _script_url(value)


class HelpdeskSettings(_Section):
    """One section per helpdesk: `[helpdesk.zendesk]`, `CHARGEDESK_HELPDESK__ZENDESK__API_TOKEN`."""

    zendesk: ZendeskSettings = ZendeskSettings()
    freshdesk: FreshdeskSettings = FreshdeskSettings()
    helpscout: HelpScoutSettings = HelpScoutSettings()
    intercom: IntercomSettings = IntercomSettings()
    front: FrontSettings = FrontSettings()


class LookupSettings(_Section):
    timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds each gateway gets before its section says so"
    )
    max_charges: int = Field(1000, ge=10, le=100_000)
    cache_seconds: int = Field(
        30, ge=0, le=3600, description="how long a card is reused (0: never)"
    )
    concurrency: int = Field(
        8, ge=1, le=256, description="lookups one process runs at once; the rest wait in line"
    )
    shared_concurrency: int = Field(
        16, ge=0, le=4096,
        description="lookups all processes together run at once, through Redis (0: no shared bound)",
    )  # fmt: skip
    busy_notice: float = Field(
        2.0, gt=0, le=60,
        description="seconds a lookup waits in line before the agent is told the card follows",
    )  # fmt: skip


class MailSettings(_Section):
    """Email: over SMTP when `smtp_url` (or SMTP_URL) is set, else written to an outbox folder."""

    from_address: str = Field("billing@example.com", description="the From of every email")
    from_name: str | None = Field(None, description="shown beside From; default the seller's name")
    reply_to: str | None = Field(
        None, description="the helpdesk address: replies land there with the billing context"
    )
    outbox_dir: Path | None = Field(
        None, description="where .eml files go without SMTP (default data_dir/outbox)"
    )
    timeout: float = Field(30.0, gt=0, le=300)
    max_attempts: int = Field(10, ge=1, le=100, description="sends tried before an email is failed")
    retry_seconds: float = Field(
        30.0, gt=0, le=3600, description="first retry delay; doubles each time"
    )


class PortalSettings(_Section):
    """The customers' billing pages, served by `chargedesk serve` under /portal."""

    base_url: str = Field(
        "http://localhost:8000", description="the public URL of `chargedesk serve`, for links"
    )
    secret: SecretStr | None = Field(
        None,
        description="HMAC key of billing-page links, cookies and codes (32+ characters); "
        "required with DATABASE_URL or REDIS_URL, else generated into data_dir/portal.key",
    )
    link_days: int = Field(7, ge=1, le=90, description="how long a billing-page link opens")
    session_hours: int = Field(
        12, ge=1, le=24 * 30, description="how long a signed-in page stays signed in"
    )

    @field_validator("secret")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value


class PaymentRequestSettings(_Section):
    """`request`: when an open payment request is reminded, and when it expires unpaid."""

    reminder_days: list[Annotated[int, Field(ge=1, le=365)]] = Field(
        default_factory=lambda: [3, 7],
        description="remind the customer this many days after the request, while it is open",
    )
    lifetime_days: int = Field(
        14, ge=1, le=365, description="an unpaid request expires (its link cancelled) after this"
    )

    @model_validator(mode="after")
    def _reminders_in_lifetime(self) -> PaymentRequestSettings:
        days = self.reminder_days
        if days != sorted(set(days)):
            raise ValueError(f"reminder_days {days}: each day once, in increasing order")
        late = [day for day in days if day >= self.lifetime_days]
        if late:
            raise ValueError(
                f"reminder_days {late}: a reminder must come before lifetime_days "
                f"({self.lifetime_days}), when the request expires"
            )
        return self


class PanelSettings(_Section):
    """The agent panel (/panel under `chargedesk serve`): the billing card in a helpdesk's sidebar."""

    session_hours: int = Field(
        8, ge=1, le=24, description="how long a panel opened from a helpdesk stays open"
    )
    trusted_days: int = Field(
        30, ge=0, le=90,
        description="how long a browser that confirmed an agent's email opens that agent's "
        "Front or Freshdesk panel confirmed (0: ask for a code on every load)",
    )  # fmt: skip
    frame_ancestors: list[str] = Field(
        default_factory=list,
        description="origins allowed to frame the panel besides the configured helpdesks' "
        "(https://host[:port]; e.g. a test host page)",
    )

    @field_validator("frame_ancestors")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        # Each one goes into a Content-Security-Policy header: only a bare origin may.
        for value in values:
            if not _ORIGIN.fullmatch(value):
                raise ValueError(
                    f"{value!r} is not an origin: scheme://host[:port], no path, no spaces"
                )
        return values


_ORIGIN = re.compile(
    r"https?://(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?"
)


class AuditSettings(_Section):
    """Signed checkpoints of the audit chain, written outside the database (see
    `chargedesk audit checkpoint` and `audit verify --checkpoint`). Off until a key and
    a file are set; both must live outside data_dir, so a copy or a restore of the
    data folder never carries what vouches for it."""

    checkpoint_file: Path | None = Field(
        None,
        description="append-only JSON Lines file the signed checkpoints go to (outside data_dir; "
        "ideally storage the database's writers cannot rewrite)",
    )
    checkpoint_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of the checkpoints (32+ characters), not the portal secret "
        "and never stored in the database or data_dir",
    )
    checkpoint_key_file: Path | None = Field(
        None, description="a file holding the checkpoint key instead (outside data_dir)"
    )
    checkpoint_minutes: int = Field(
        60, ge=1, le=24 * 60, description="how often the job worker writes a checkpoint"
    )

    @field_validator("checkpoint_key")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> AuditSettings:
        if self.checkpoint_key is not None and self.checkpoint_key_file is not None:
            raise ValueError("set checkpoint_key or checkpoint_key_file, not both")
        return self


class MetricsSettings(_Section):
    """`/metrics` (Prometheus): who may read it."""

    token: SecretStr | None = Field(
        None,
        description="a bearer token scrapers send (Authorization: Bearer ...); without one, "
        "/metrics answers only requests from this machine that came through no proxy",
    )


class LogSettings(_Section):
    """Where logs go and in what shape."""

    format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: plain text on a terminal, one JSON object per line otherwise"
    )
    to_file: bool = Field(
        True, description="also write the log to a file, rotated by size (false: stdout only)"
    )
    file: Path | None = Field(None, description="that file (default: data_dir/chargedesk.log)")
    file_max_bytes: int = Field(10_000_000, ge=100_000, description="rotate the file at this size")
    file_backups: int = Field(5, ge=1, le=100, description="rotated files kept")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHARGEDESK_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="SQLite file, embedded Redis, outbox")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("database_url", "DATABASE_URL", "CHARGEDESK_DATABASE_URL"),
    )
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("redis_url", "REDIS_URL", "CHARGEDESK_REDIS_URL")
    )
    redis_prefix: str = Field(
        "chargedesk:", min_length=1, description="Namespace for every Redis key"
    )
    locale: str = "en_US"
    approvals_lock_seconds: float = Field(
        30.0, gt=0, description="Redis lock around one gateway action"
    )
    recover_after_seconds: float = Field(
        60.0, gt=0, description="An execution older than this is re-run"
    )
    duplicate_request_seconds: float = Field(
        600.0,
        ge=0,
        description="a second identical refund, capture, void or cancel by the same person "
        "within this many seconds asks first (0: never asks)",
    )
    alerts_channel: str | None = Field(
        None, description="where dispute and failed-payment alerts go"
    )
    index_sync_minutes: int = Field(
        60, ge=0, le=1440,
        description="how often the worker syncs every gateway into the billing index "
        "(0: only `chargedesk sync`)",
    )  # fmt: skip
    dispute_reminder_days: list[Annotated[int, Field(ge=1, le=60)]] = Field(
        default_factory=lambda: [3],
        description="remind the alerts channel of a dispute not answered yet when its evidence "
        "is due within each of these many days (once per dispute per number)",
    )
    jobs_in_process: bool | None = Field(
        None,
        description="run background jobs (emails, documents) inside the web, chat and shell "
        "processes; default: yes on the embedded Redis, no with REDIS_URL (run `chargedesk worker`)",
    )
    smtp_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("smtp_url", "SMTP_URL", "CHARGEDESK_SMTP_URL"),
        description="smtp://user:password@host:587 (STARTTLS) or smtps://...:465 (TLS)",
    )
    mail: MailSettings = MailSettings()
    portal: PortalSettings = PortalSettings()
    questions_channel: str | None = Field(
        None,
        description="where customers' billing questions go, naming the platform (slack:C0123ABC); "
        "default: alerts_channel",
    )
    ledger: LedgerSettings = LedgerSettings()
    stripe: StripeSettings = StripeSettings()
    paypal: PayPalSettings = PayPalSettings()
    woocommerce: WooCommerceSettings = WooCommerceSettings()
    recurly: RecurlySettings = RecurlySettings()
    braintree: BraintreeSettings = BraintreeSettings()
    slack: SlackSettings = SlackSettings()
    discord: DiscordSettings = DiscordSettings()
    helpdesk: HelpdeskSettings = HelpdeskSettings()
    lookup: LookupSettings = LookupSettings()
    audit: AuditSettings = AuditSettings()
    panel: PanelSettings = PanelSettings()
    payment_requests: PaymentRequestSettings = PaymentRequestSettings()
    metrics: MetricsSettings = MetricsSettings()
    logs: LogSettings = LogSettings()
    shutdown_seconds: float = Field(
        25.0, gt=0, le=600,
        description="on SIGTERM, how long requests and jobs under way may take to finish",
    )  # fmt: skip

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgres://") or value.startswith("postgresql://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            return value
        raise ValueError("must start with postgresql:// or sqlite+aiosqlite://")

    @model_validator(mode="after")
    def _shared_secrets(self) -> Settings:
        """Shared stores mean several processes: they must sign with one key, not one per folder."""
        if self.shared_stores and self.portal.secret is None:
            # Raised as a ValidationError (pydantic keeps its location) so the message names
            # portal.secret like any other bad key.
            problem = PydanticCustomError("shared_secret", SHARED_SECRET_NEEDED)
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=problem, loc=("portal", "secret"), input=None)],
            )
        return self

    @model_validator(mode="after")
    def _audit_anchor_apart(self) -> Settings:
        """What vouches for the audit log must not sit beside it, nor be another key."""
        data = self.data_dir.resolve()
        for name in ("checkpoint_file", "checkpoint_key_file"):
            path = getattr(self.audit, name)
            if path is not None and path.resolve().is_relative_to(data):
                raise _setting_error(
                    ("audit", name),
                    f"must be outside data_dir ({data}): a copy of the data folder must not "
                    "carry what vouches for it",
                )
        key, portal = self.audit.checkpoint_key, self.portal.secret
        if key and portal and key.get_secret_value() == portal.get_secret_value():
            raise _setting_error(("audit", "checkpoint_key"), "must not be the portal secret")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        folder = config_dir()
        if folder is None:
            return (init_settings, env_settings)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=folder / "chargedesk.toml")
        return (init_settings, env_settings, toml)

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chargedesk.db').resolve()}"

    @property
    def shared_stores(self) -> bool:
        """DATABASE_URL or REDIS_URL: stores other processes (other data folders) may use too."""
        return self.database_url is not None or self.redis_url is not None

    @property
    def jobs_here(self) -> bool:
        """Does this process run the background jobs itself?"""
        if self.jobs_in_process is not None:
            return self.jobs_in_process
        return self.redis_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.sql_url.startswith("sqlite")


def _setting_error(loc: tuple[str, ...], message: str) -> ValidationError:
    """A ValidationError located at `loc`, so the message names the key like any other."""
    problem = PydanticCustomError("setting", message)
    return ValidationError.from_exception_data(
        "Settings", [InitErrorDetails(type=problem, loc=loc, input=None)]
    )


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings, or raise ConfigError naming every bad key."""
    folder = config_dir()
    path = folder / "chargedesk.toml" if folder is not None else None
    if path is not None:
        read_toml(path)  # a syntax error gets a clear message before pydantic sees it
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        source = f"settings ({path or 'no chargedesk.toml'} or CHARGEDESK_* environment)"
        raise ConfigError(describe_validation_error(exc, source)) from None
