"""The simulator's configuration: store specs, provider limits, faults and latency.

Everything here round-trips through JSON (``to_json``/``from_json``) with the field names as
keys, so the same shapes serve a ``--config file.json``, ``GET/POST /_sim/config`` and Python
callers. ``SimStore`` is frozen (its data is generated from it); runtime knobs on a store
(a revoked token, a frozen shop) are changed by replacing the spec: see
:meth:`SimulatorConfig.patched`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Currencies the generator knows: (price scale relative to USD, sales-tax rate added on top).
#: JPY is left out on purpose: it has no minor unit and the generator works in cents.
CURRENCIES: dict[str, tuple[float, float]] = {
    "USD": (1.0, 0.07),
    "EUR": (0.92, 0.0),
    "GBP": (0.79, 0.0),
    "BRL": (5.0, 0.0),
    "CAD": (1.36, 0.05),
    "AUD": (1.5, 0.0),
}

DEFAULT_SCOPES: tuple[str, ...] = ("read_orders", "read_all_orders", "read_customers")
DEFAULT_KLAVIYO_SCOPES: tuple[str, ...] = (
    "accounts:read",
    "metrics:read",
    "campaigns:read",
    "flows:read",
)
SHOP_STATES = ("active", "frozen", "locked")
SCOPE_DENIALS = ("http", "graphql")
FAULT_PROVIDERS = ("shopify", "klaviyo")


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def _account_id(shop_domain: str, seed: int) -> str:
    # Klaviyo account ids are six-character public keys.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    number = int(_digest("account", shop_domain, seed), 16)
    chars = []
    for _ in range(6):
        number, rest = divmod(number, len(alphabet))
        chars.append(alphabet[rest])
    return "".join(chars)


@dataclass(frozen=True, slots=True)
class SimStore:
    """One simulated store: a Shopify shop plus its Klaviyo account.

    Credentials left empty are derived deterministically from the domain and seed.
    ``history_end`` is the last local date with orders; ``None`` means "today in UTC + 1 day",
    fixed when a :class:`~storesync.simulator.Simulator` is created.
    """

    shop_domain: str
    shopify_token: str = ""
    klaviyo_private_key: str = ""
    klaviyo_account_id: str = ""
    timezone: str = "UTC"
    currency: str = "USD"
    orders_per_day: float = 20.0
    seed: int = 0
    history_days: int = 400
    history_end: date | None = None
    name: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    # Runtime knobs (faults of one store rather than of the transport).
    token_revoked: bool = False
    shop_state: str = "active"
    scope_denial: str = "http"
    klaviyo_key_revoked: bool = False
    klaviyo_scopes: tuple[str, ...] = DEFAULT_KLAVIYO_SCOPES
    bucket_size: float | None = None
    restore_rate: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: fill the derived defaults once, here
        if not self.shopify_token:
            set_(
                self,
                "shopify_token",
                "shpat_" + _digest("shopify", self.shop_domain, self.seed)[:32],
            )
        if not self.klaviyo_private_key:
            set_(
                self,
                "klaviyo_private_key",
                "pk_" + _digest("klaviyo", self.shop_domain, self.seed)[:34],
            )
        if not self.klaviyo_account_id:
            set_(self, "klaviyo_account_id", _account_id(self.shop_domain, self.seed))
        if not self.name:
            set_(self, "name", self.shop_domain.split(".")[0].replace("-", " ").title())
        set_(self, "scopes", tuple(self.scopes))
        set_(self, "klaviyo_scopes", tuple(self.klaviyo_scopes))
        self._validate()

    def _validate(self) -> None:
        if not self.shop_domain or "/" in self.shop_domain:
            raise ValueError(f"shop_domain {self.shop_domain!r} is not a host name")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        if self.currency not in CURRENCIES:
            raise ValueError(f"currency {self.currency!r} is not one of {sorted(CURRENCIES)}")
        if self.orders_per_day < 0 or self.history_days < 1:
            raise ValueError("orders_per_day must be >= 0 and history_days >= 1")
        if self.shop_state not in SHOP_STATES:
            raise ValueError(f"shop_state must be one of {SHOP_STATES}")
        if self.scope_denial not in SCOPE_DENIALS:
            raise ValueError(f"scope_denial must be one of {SCOPE_DENIALS}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimStore:
        """Inverse of :meth:`to_json`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown store field(s): {sorted(unknown)}")
        values = dict(data)
        if isinstance(values.get("history_end"), str):
            values["history_end"] = date.fromisoformat(values["history_end"])
        for key in ("scopes", "klaviyo_scopes"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(slots=True)
class WindowLimit:
    """Klaviyo fixed-window limits for one endpoint group; ``None`` means unlimited."""

    burst: int | None = None  # per second
    steady: int | None = None  # per minute
    daily: int | None = None  # per UTC day


@dataclass(slots=True)
class KlaviyoLimits:
    """Per-account limits of each endpoint group (the numbers from Klaviyo's docs).

    ``reports`` covers both values-report endpoints: one daily budget per account.
    ``aggregates`` is Query Metric Aggregates (no daily cap), named as storesync's pacing names it.
    """

    reports: WindowLimit = field(default_factory=lambda: WindowLimit(1, 2, 225))
    metrics: WindowLimit = field(default_factory=lambda: WindowLimit(10, 150))
    campaigns: WindowLimit = field(default_factory=lambda: WindowLimit(10, 150))
    flows: WindowLimit = field(default_factory=lambda: WindowLimit(3, 60))
    accounts: WindowLimit = field(default_factory=lambda: WindowLimit(1, 15))
    aggregates: WindowLimit = field(default_factory=lambda: WindowLimit(3, 60))

    def group(self, name: str) -> WindowLimit:
        limit: WindowLimit = getattr(self, name)
        return limit


@dataclass(slots=True)
class FaultConfig:
    """Injected transport faults; each provider request draws once from a seeded RNG.

    The rates are probabilities that add up (at most 1): ``error_rate`` answers 5xx,
    ``throttle_rate`` answers THROTTLED (Shopify) or 429 (Klaviyo), ``timeout_rate`` sleeps
    ``timeout_seconds`` before answering (with ``hang``, over TCP, never answers until the
    client goes away), ``drop_rate`` closes the connection without a response. In-process
    (``httpx.ASGITransport``) a timeout sleeps ``timeout_seconds`` and raises
    ``httpx.ReadTimeout``: keep it small there. ``stall`` holds every provider request until
    it is turned off. ``bulk_failure_rate`` makes bulk operations end FAILED.
    """

    seed: int = 0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_rate: float = 0.0
    timeout_seconds: float = 5.0
    hang: bool = False
    stall: bool = False
    providers: tuple[str, ...] = FAULT_PROVIDERS
    bulk_failure_rate: float = 0.0

    def validate(self) -> None:
        rates = (self.error_rate, self.throttle_rate, self.timeout_rate, self.drop_rate)
        if any(r < 0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        if not set(self.providers) <= set(FAULT_PROVIDERS):
            raise ValueError(f"fault providers must be among {FAULT_PROVIDERS}")


@dataclass(slots=True)
class LatencyConfig:
    """Delay added to every provider response: ``fixed_ms`` plus uniform ``0..jitter_ms``."""

    fixed_ms: float = 0.0
    jitter_ms: float = 0.0


@dataclass(slots=True)
class SimulatorConfig:
    """Everything the simulator needs; JSON keys are the field names."""

    stores: list[SimStore] = field(default_factory=list)
    bucket_size: float = 1000.0
    restore_rate: float = 50.0
    max_query_cost: int = 1000
    max_page_size: int = 250
    bulk_seconds: float = 0.5
    report_page_size: int = 50
    klaviyo_limits: KlaviyoLimits = field(default_factory=KlaviyoLimits)
    faults: FaultConfig = field(default_factory=FaultConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    request_log_size: int = 100_000
    data_cache_size: int = 64

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("stores", "klaviyo_limits", "faults", "latency")
        }
        out["stores"] = [s.to_json() for s in self.stores]
        out["klaviyo_limits"] = {
            f.name: dataclasses.asdict(self.klaviyo_limits.group(f.name))
            for f in dataclasses.fields(self.klaviyo_limits)
        }
        faults = dataclasses.asdict(self.faults)
        faults["providers"] = list(self.faults.providers)
        out["faults"] = faults
        out["latency"] = dataclasses.asdict(self.latency)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulatorConfig:
        """Build from JSON; missing keys take their defaults, unknown keys are an error."""
        return cls().patched(data)

    def patched(self, patch: dict[str, Any]) -> SimulatorConfig:
        """A copy with ``patch`` applied (nested objects are merged key by key).

        ``stores`` may be a list (replaces every store) or an object keyed by shop domain
        whose values patch that store's fields (for example ``{"token_revoked": true}``);
        ``add_stores`` appends new stores.
        """
        top = {f.name for f in dataclasses.fields(self)} | {"add_stores"}
        unknown = set(patch) - top
        if unknown:
            raise ValueError(f"unknown config key(s): {sorted(unknown)}")
        new = dataclasses.replace(self)
        new.stores = list(self.stores)
        for key, value in patch.items():
            if key == "stores":
                new.stores = _patch_stores(new.stores, value)
            elif key == "add_stores":
                new.stores.extend(SimStore.from_json(s) for s in value)
            elif key == "klaviyo_limits":
                new.klaviyo_limits = _patch_limits(self.klaviyo_limits, value)
            elif key == "faults":
                new.faults = _merge(self.faults, value)
                new.faults.providers = tuple(new.faults.providers)
                new.faults.validate()
            elif key == "latency":
                new.latency = _merge(self.latency, value)
            else:
                setattr(new, key, type(getattr(self, key))(value))
        domains = [s.shop_domain for s in new.stores]
        if len(domains) != len(set(domains)):
            raise ValueError("two stores share a shop_domain")
        return new


def _merge(obj: Any, patch: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = set(patch) - names
    if unknown:
        raise ValueError(f"unknown key(s) for {type(obj).__name__}: {sorted(unknown)}")
    return dataclasses.replace(obj, **patch)


def _patch_limits(limits: KlaviyoLimits, patch: dict[str, Any]) -> KlaviyoLimits:
    names = {f.name for f in dataclasses.fields(limits)}
    unknown = set(patch) - names
    if unknown:
        raise ValueError(f"unknown Klaviyo limit group(s): {sorted(unknown)}")
    changes = {name: _merge(limits.group(name), value) for name, value in patch.items()}
    return dataclasses.replace(limits, **changes)


def _patch_stores(stores: list[SimStore], patch: Any) -> list[SimStore]:
    if isinstance(patch, list):
        return [s if isinstance(s, SimStore) else SimStore.from_json(s) for s in patch]
    by_domain = {s.shop_domain: s for s in stores}
    for domain, changes in patch.items():
        if domain not in by_domain:
            raise ValueError(f"no store with shop_domain {domain!r}")
        merged = by_domain[domain].to_json() | dict(changes)
        by_domain[domain] = SimStore.from_json(merged)
    return [by_domain[s.shop_domain] for s in stores]
