"""What the writer and the reconciler ask Stripe, on top of the `stripemeter.stripe.client` seam.

Every call goes through `StripeGateway`, which adds what the bare SDK client lacks:

- retries with exponential backoff and jitter on 429, 5xx, 409 and connection errors
  (the client itself is built with 0 retries so that only this policy applies);
- a cap on concurrent calls per Stripe account, shared by every gateway in the process
  (a slot is never held for long: the client from `stripemeter.stripe.client` gives every
  HTTP call a `STRIPE_TIMEOUT_S` timeout, and a timed-out call is a retryable
  connection error like any other);
- short caches for lookups that change rarely (test-clock time, meters);
- typed answers (`MeterInfo`, `ItemInfo`, `InvoicePeriod`, `PriceTerms`) instead of SDK
  objects;
- corrections after close (`create_invoice_item`, `create_credit_note`): each first looks
  for the object it would create (by the `stripemeter_correction` metadata it sets), then
  creates it with the caller's deterministic Idempotency-Key, which every retry re-sends
  unchanged, so a correction exists in Stripe at most once however often it is applied.

Exceptions::

    GatewayError
     ├── StripeUnavailable   Stripe kept failing (429/5xx/connection) after the retries
     └── StripeRefused       Stripe refused the request (4xx); retrying will not help
          └── StripeKeyRefused         Stripe refused the key (401), not the request
               └── StripePermissionMissing  a restricted key lacks a permission (403), named
    ShuttingDown             the gateway's `stop` event cut a retry backoff short

`ShuttingDown` is on purpose no `GatewayError`: code that records Stripe failures
(the writer's `worker_state`, its failed-pass counter, the reconciler) catches
`GatewayError` and must let a shutdown through, for a shutdown is not an outage.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

import stripe

from stripemeter.errors import (
    ShuttingDown,
    StripeKeyRefused,
    StripePermissionMissing,
    StripeRefused,
    StripeUnavailable,
)
from stripemeter.stripe.stream import MeterEventSessions, StreamEvent, send_batch

T = TypeVar("T")

FINAL_INVOICE_STATUSES = frozenset({"open", "paid", "uncollectible"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: delay n is uniform in [base*2^n/2, base*2^n]."""

    attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class MeterInfo:
    """The meter behind a metered price, as the writer needs it."""

    meter_id: str
    event_name: str
    customer_key: str
    value_key: str
    formula: str


@dataclass(frozen=True)
class ClockReading:
    """A customer's test clock as Stripe reported it; both None for a customer without one."""

    test_clock_id: str | None
    frozen_time: int | None  # unix seconds


@dataclass(frozen=True)
class ItemInfo:
    """A customer's subscription item on a price, with its current period.

    `ended`: the subscription is canceled. Its last period is then not open but billed
    (Stripe invoices a canceled subscription's metered usage at once), and no usage
    after it belongs to the subscription.
    """

    item_id: str
    subscription_id: str
    customer_id: str
    price_id: str
    period_start: int
    period_end: int
    ended: bool = False


@dataclass(frozen=True)
class InvoicePeriod:
    """One invoice line billing the mapped price: its period, quantity and invoice state."""

    invoice_id: str
    status: str
    start: int
    end: int
    quantity: Decimal
    line_id: str = ""

    @property
    def finalized(self) -> bool:
        """Finalized invoices (open, paid, uncollectible) no longer take usage."""
        return self.status in FINAL_INVOICE_STATUSES


@dataclass(frozen=True)
class PriceTier:
    """One tier of a tiered price; `up_to` None is the last (`inf`)."""

    up_to: int | None
    unit_amount: Decimal
    flat_amount: Decimal


@dataclass(frozen=True)
class PriceTerms:
    """What a price charges: per unit, or by tiers (graduated, volume), after
    `transform_quantity` (divide_by, round up/down). Amounts in the minor unit."""

    price_id: str
    currency: str
    billing_scheme: str
    unit_amount: Decimal | None
    tiers_mode: str | None = None
    tiers: tuple[PriceTier, ...] = ()
    divide_by: int | None = None
    round_up: bool = False

    @property
    def plain_per_unit(self) -> bool:
        """Whether quantity x unit amount is the whole rule (no tiers, no transform)."""
        return self.billing_scheme == "per_unit" and self.divide_by is None


CORRECTION_METADATA_KEY = "stripemeter_correction"


_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def account_semaphore(account: str, limit: int) -> threading.BoundedSemaphore:
    """The process-wide cap on concurrent calls to one Stripe account."""
    with _SEMAPHORES_LOCK:
        sem = _SEMAPHORES.get(account)
        if sem is None:
            sem = threading.BoundedSemaphore(limit)
            _SEMAPHORES[account] = sem
        return sem


def _retryable(exc: stripe.StripeError) -> bool:
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return True
    status = exc.http_status
    return status is None or status == 409 or status >= 500


# Stripe's 403 for a restricted key: "The provided key 'rk_live_***abcd' does not have
# the required permissions for this endpoint on account 'acct_...'. Having the
# 'rak_billing_meter_event_write' permission would allow this request to continue."
# (type invalid_request_error, no code; the SDK raises `stripe.PermissionError`).
# Without a permission to name it ends "...the required permissions are not available
# for use by restricted keys."
_PERMISSION_NAMED = re.compile(r"Having the '([A-Za-z0-9_]+)' permission")


def _permission_missing(what: str, exc: stripe.StripeError) -> StripePermissionMissing:
    """One line naming the call and the permission the key lacks (never the key)."""
    text = str(exc.user_message or exc)
    found = _PERMISSION_NAMED.search(text)
    if found:
        permission = found.group(1)
        return StripePermissionMissing(
            f"{what}: the Stripe key lacks the '{permission}' permission (403); grant it "
            "to the restricted key in the Stripe Dashboard (Developers > API keys)",
            permission=permission,
        )
    return StripePermissionMissing(
        f"{what}: the Stripe key may not make this call (403; Stripe names no permission "
        "a restricted key could be given); use a key with access to it",
        permission=None,
    )


def _describe(exc: stripe.StripeError) -> str:
    status = exc.http_status if exc.http_status is not None else "no answer"
    message = exc.user_message or str(exc) or type(exc).__name__
    return f"{type(exc).__name__} ({status}): {message}"


class StripeGateway:
    """Typed, retried, rate-capped access to the Stripe calls stripemeter makes.

    With a `stop` event, a retry backoff waits on it and raises `ShuttingDown` as soon
    as it is set; without one, backoffs call `sleep`.
    """

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        account: str = "default",
        max_concurrency: int = 4,
        retry: RetryPolicy | None = None,
        clock_cache_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.account = account
        self.retry = retry or RetryPolicy()
        self._semaphore = account_semaphore(account, max_concurrency)
        self._clock_cache_s = clock_cache_s
        self._customer_clock: dict[str, str | None] = {}
        self._clock_time: dict[str, tuple[float, int]] = {}
        self._sleep = sleep
        self._stop = stop
        self.stream_sessions = MeterEventSessions()
        self._price_terms: dict[str, PriceTerms] = {}

    def _backoff(self, seconds: float) -> None:
        if self._stop is None:
            self._sleep(seconds)
        elif self._stop.wait(seconds):
            raise ShuttingDown("stopping: a Stripe retry was abandoned; the work stays pending")

    # -- plumbing ---------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[int, bool], T]) -> T:
        """Run `fn(attempt, after_server_error)` with the retry policy and the cap."""
        last: stripe.StripeError | None = None
        after_5xx = False
        for attempt in range(self.retry.attempts):
            if attempt:
                self._backoff(self.retry.delay(attempt - 1))
            try:
                with self._semaphore:
                    return fn(attempt, after_5xx)
            except stripe.StripeError as exc:
                if isinstance(exc, stripe.PermissionError):
                    raise _permission_missing(what, exc) from exc
                if isinstance(exc, stripe.AuthenticationError):
                    raise StripeKeyRefused(
                        f"{what}: {_describe(exc)}", code="api_key_refused"
                    ) from exc
                if not _retryable(exc):
                    error = exc.error
                    raise StripeRefused(
                        f"{what}: {_describe(exc)}",
                        code=getattr(error, "code", None) if error else None,
                        param=getattr(error, "param", None) if error else None,
                    ) from exc
                last = exc
                after_5xx = after_5xx or (exc.http_status or 0) >= 500
        assert last is not None
        raise StripeUnavailable(
            f"{what}: Stripe kept failing after {self.retry.attempts} attempts; "
            f"last: {_describe(last)}"
        ) from last

    def _retrieve_or_none(self, what: str, fetch: Callable[[], T]) -> T | None:
        """`_call` for a retrieve, with None when Stripe has no such object."""
        try:
            return self._call(what, lambda *_: fetch())
        except StripeRefused as exc:
            if exc.code == "resource_missing":
                return None
            raise

    # -- meters -----------------------------------------------------------------

    def price_meter(self, price_id: str) -> MeterInfo:
        """The meter a metered price bills (its `recurring.meter`), with payload keys."""
        price = self._call(
            f"retrieve price {price_id}", lambda *_: self.client.v1.prices.retrieve(price_id)
        )
        recurring = price.recurring
        meter_id = recurring.meter if recurring is not None else None
        if not meter_id:
            raise StripeRefused(
                f"price {price_id} is not a meter-backed metered price (no recurring.meter)",
                code="price_without_meter",
                param="priceId",
            )
        meter = self._call(
            f"retrieve meter {meter_id}",
            lambda *_: self.client.v1.billing.meters.retrieve(meter_id),
        )
        return MeterInfo(
            meter_id=meter.id,
            event_name=meter.event_name,
            customer_key=meter.customer_mapping.event_payload_key,
            value_key=meter.value_settings.event_payload_key,
            formula=meter.default_aggregation.formula,
        )

    def meter_formula(self, meter_id: str) -> str:
        """The aggregation formula of a meter (sum, count, last)."""
        meter = self._call(
            f"retrieve meter {meter_id}",
            lambda *_: self.client.v1.billing.meters.retrieve(meter_id),
        )
        return meter.default_aggregation.formula

    def send_meter_event(
        self,
        meter: MeterInfo,
        *,
        customer_id: str,
        value: int,
        timestamp: int,
        identifier: str,
        idempotency_key: Callable[[str], str],
    ) -> Literal["accepted", "duplicate"]:
        """Send one meter event; "duplicate" when Stripe already has this identifier.

        `idempotency_key(tag)` builds the key; the tag changes after a 5xx so that a
        stored server-error answer is not replayed forever (the identifier still
        dedupes the event itself).
        """

        def send(attempt: int, after_5xx: bool) -> Literal["accepted", "duplicate"]:
            key = idempotency_key(f"r{attempt}" if after_5xx else "")
            try:
                self.client.v1.billing.meter_events.create(
                    {
                        "event_name": meter.event_name,
                        "identifier": identifier,
                        "timestamp": timestamp,
                        "payload": {meter.customer_key: customer_id, meter.value_key: str(value)},
                    },
                    {"idempotency_key": key},
                )
            except stripe.InvalidRequestError as exc:
                if _is_duplicate_identifier(exc):
                    return "duplicate"
                raise
            return "accepted"

        return self._call(f"meter event {identifier} for {customer_id}", send)

    def send_meter_event_batch(
        self, events: Sequence[StreamEvent], *, idempotency_key: Callable[[str], str]
    ) -> None:
        """Send 1..100 meter events in one v2 stream request (`stripemeter.stripe.stream`).

        Stripe answers `{}`: it took the request and validates each event afterwards, so
        there is no per-event outcome (a known identifier is dropped, not refused).
        """
        send_batch(self.client, self.stream_sessions, self._call, events, idempotency_key)

    def meter_total(self, meter_id: str, customer_id: str, start: int, end: int) -> Decimal:
        """The meter's aggregate for a customer over minute-aligned `[start, end)`."""
        if end <= start:
            return Decimal(0)
        summaries = self._call(
            f"meter summary {meter_id} for {customer_id}",
            lambda *_: self.client.v1.billing.meters.event_summaries.list(
                meter_id, {"customer": customer_id, "start_time": start, "end_time": end}
            ),
        )
        total = Decimal(0)
        for summary in summaries.data:
            total += Decimal(repr(float(summary.aggregated_value)))
        return total

    # -- customers, clocks, subscriptions, invoices -------------------------------

    def clock_time(self, customer_id: str) -> int | None:
        """The customer's test-clock frozen time, or None for a customer without a clock."""
        return self.customer_clock(customer_id).frozen_time

    def customer_clock(self, customer_id: str) -> ClockReading:
        """The customer's test clock and its frozen time (both None without a clock).

        Cached briefly: a clock only moves forward, so a stale value is earlier than the
        real one and every timestamp chosen from it is still accepted.
        """
        if customer_id not in self._customer_clock:
            customer = self._call(
                f"retrieve customer {customer_id}",
                lambda *_: self.client.v1.customers.retrieve(customer_id),
            )
            self._customer_clock[customer_id] = _clock_id_of(customer)
        clock_id = self._customer_clock[customer_id]
        if clock_id is None:
            return ClockReading(None, None)
        cached = self._clock_time.get(clock_id)
        if cached and time.monotonic() - cached[0] < self._clock_cache_s:
            return ClockReading(clock_id, cached[1])
        return ClockReading(clock_id, self._read_clock(clock_id))

    def read_customer_clock(self, customer_id: str) -> ClockReading | None:
        """The customer's clock read from Stripe now (no cache); None when Stripe has no
        such customer or it was deleted."""
        customer = self._retrieve_or_none(
            f"retrieve customer {customer_id}",
            lambda: self.client.v1.customers.retrieve(customer_id),
        )
        if customer is None or bool(getattr(customer, "deleted", False)):
            return None
        clock_id = _clock_id_of(customer)
        self._customer_clock[customer_id] = clock_id
        if clock_id is None:
            return ClockReading(None, None)
        return ClockReading(clock_id, self._read_clock(clock_id))

    def _read_clock(self, clock_id: str) -> int:
        clock_obj = self._call(
            f"retrieve test clock {clock_id}",
            lambda *_: self.client.v1.test_helpers.test_clocks.retrieve(clock_id),
        )
        frozen = int(clock_obj.frozen_time)
        self._clock_time[clock_id] = (time.monotonic(), frozen)
        return frozen

    def find_item(self, customer_id: str, price_id: str, item_hint: str | None) -> ItemInfo | None:
        """The customer's subscription item on `price_id`, or None when there is none.

        `item_hint` (the mapping's subscription_item_id) is used when it belongs to this
        customer; otherwise the customer's subscriptions on the price are searched, a
        live one first. Canceled subscriptions count too (`ItemInfo.ended`): Stripe's
        default list leaves them out, which hid a canceled subscription's final invoice
        from the reconciler.
        """
        subs = self._call(
            f"list subscriptions of {customer_id}",
            lambda *_: self.client.v1.subscriptions.list(
                {"customer": customer_id, "limit": 100, "status": "all"}
            ),
        )
        found: list[ItemInfo] = []
        for sub in subs.auto_paging_iter():
            for item in sub.items.data:
                if item.price.id != price_id:
                    continue
                info = ItemInfo(
                    item_id=item.id,
                    subscription_id=sub.id,
                    customer_id=customer_id,
                    price_id=price_id,
                    period_start=int(item.current_period_start),
                    period_end=int(item.current_period_end),
                    ended=sub.status in ("canceled", "incomplete_expired"),
                )
                if item_hint and item.id == item_hint:
                    return info
                found.append(info)
        # A live subscription first; among ended ones, the one that ended last.
        found.sort(key=lambda info: (info.ended, -info.period_end))
        return found[0] if found else None

    def item_customer(self, item_id: str) -> str | None:
        """The customer owning a subscription item, or None when Stripe has no such item."""
        owner = self.item_owner(item_id)
        return owner.customer_id if owner is not None else None

    def invoice_periods(self, subscription_id: str, price_id: str) -> list[InvoicePeriod]:
        """Every invoice line of the subscription billing usage of `price_id`, newest first.

        The creation invoice is skipped: its metered line (quantity 0) names the new
        period, whose usage is billed in arrears by a later invoice. Lines with an empty
        period are skipped too.
        """
        invoices = self._call(
            f"list invoices of {subscription_id}",
            lambda *_: self.client.v1.invoices.list(
                {"subscription": subscription_id, "limit": 100}
            ),
        )
        periods: list[InvoicePeriod] = []
        for invoice in invoices.auto_paging_iter():
            if invoice.status in (None, "void") or invoice.id is None:
                continue
            if invoice.billing_reason == "subscription_create":
                continue
            invoice_id: str = invoice.id
            lines = self._call(
                f"list lines of invoice {invoice_id}",
                lambda *_, inv=invoice_id: self.client.v1.invoices.line_items.list(
                    inv, {"limit": 100}
                ),
            )
            for line in lines.auto_paging_iter():
                pricing = line.pricing
                details = pricing.price_details if pricing is not None else None
                if details is None or details.price != price_id:
                    continue
                if line.period.end <= line.period.start:
                    continue
                quantity = line.quantity_decimal
                if quantity is None:
                    quantity = Decimal(line.quantity or 0)
                periods.append(
                    InvoicePeriod(
                        invoice_id=invoice_id,
                        status=str(invoice.status),
                        start=int(line.period.start),
                        end=int(line.period.end),
                        quantity=Decimal(quantity),
                        line_id=str(line.id),
                    )
                )
        periods.sort(key=lambda p: p.start, reverse=True)
        return periods

    # -- prices and corrections after close ----------------------------------------

    def price_terms(self, price_id: str) -> PriceTerms:
        """How `price_id` charges (its tiers included); kept, since a price's amounts
        never change in Stripe."""
        known = self._price_terms.get(price_id)
        if known is not None:
            return known
        price = self._call(
            f"retrieve price {price_id}",
            lambda *_: self.client.v1.prices.retrieve(price_id, {"expand": ["tiers"]}),
        )
        transform = price.transform_quantity
        tiers = tuple(
            PriceTier(
                up_to=None if tier.up_to is None else int(tier.up_to),
                unit_amount=Decimal(tier.unit_amount_decimal or 0),
                flat_amount=Decimal(tier.flat_amount_decimal or 0),
            )
            for tier in (getattr(price, "tiers", None) or [])
        )
        unit = price.unit_amount_decimal
        terms = PriceTerms(
            price_id=price_id,
            currency=price.currency,
            billing_scheme=price.billing_scheme,
            unit_amount=None if unit is None else Decimal(unit),
            tiers_mode=price.tiers_mode,
            tiers=tiers,
            divide_by=None if transform is None else int(transform.divide_by),
            round_up=transform is not None and transform.round == "up",
        )
        self._price_terms[price_id] = terms
        return terms

    def create_invoice_item(
        self,
        *,
        correction_tag: str,
        customer_id: str,
        subscription_id: str,
        currency: str,
        description: str,
        period: tuple[int, int],
        quantity: int,
        unit_amount_decimal: Decimal | None,
        amount: int,
        idempotency_key: str,
    ) -> str:
        """The id of the invoice item billing a correction on the subscription's next
        invoice: `quantity` x `unit_amount_decimal` when given, else `amount`.

        An item already tagged `correction_tag` (this correction, made by an earlier
        apply) is returned as is; otherwise it is created with `idempotency_key`.
        """
        found = self._call(
            f"list invoice items of {customer_id}",
            lambda *_: self.client.v1.invoice_items.list({"customer": customer_id, "limit": 100}),
        )
        for item in found.auto_paging_iter():
            if _correction_tag(item.metadata) == correction_tag:
                return str(item.id)
        params: dict[str, object] = {
            "customer": customer_id,
            "subscription": subscription_id,
            "currency": currency,
            "description": description,
            "period": {"start": period[0], "end": period[1]},
            "metadata": {CORRECTION_METADATA_KEY: correction_tag},
        }
        if unit_amount_decimal is not None:
            params |= {"quantity": quantity, "unit_amount_decimal": str(unit_amount_decimal)}
        else:
            params["amount"] = amount
        item = self._call(
            f"create invoice item {correction_tag} for {customer_id}",
            lambda *_: self.client.v1.invoice_items.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        return str(item.id)

    def create_credit_note(
        self,
        *,
        correction_tag: str,
        invoice_id: str,
        line_id: str,
        quantity: int | None,
        amount: int,
        idempotency_key: str,
    ) -> str:
        """The id of the credit note crediting a correction on a finalized invoice:
        `quantity` of the invoice line when given (Stripe prices it at the line's unit
        amount), else `amount` of it.

        What an open invoice still owes is reduced first; the rest (all of it on a paid
        invoice) is credited to the customer's balance, which Stripe spends on the next
        invoice. A note already tagged `correction_tag` is returned as is; otherwise it
        is created with `idempotency_key`.
        """
        found = self._call(
            f"list credit notes of {invoice_id}",
            lambda *_: self.client.v1.credit_notes.list({"invoice": invoice_id, "limit": 100}),
        )
        for note in found.auto_paging_iter():
            if _correction_tag(note.metadata) == correction_tag:
                return str(note.id)
        invoice = self._call(
            f"retrieve invoice {invoice_id}",
            lambda *_: self.client.v1.invoices.retrieve(invoice_id),
        )
        owed = int(invoice.amount_remaining or 0) if invoice.status == "open" else 0
        line: dict[str, object] = {"type": "invoice_line_item", "invoice_line_item": line_id}
        line |= {"quantity": quantity} if quantity is not None else {"amount": amount}
        params: dict[str, object] = {
            "invoice": invoice_id,
            "lines": [line],
            "metadata": {CORRECTION_METADATA_KEY: correction_tag},
        }
        post_payment = amount - min(amount, owed)
        if post_payment:
            params["credit_amount"] = post_payment
        note = self._call(
            f"create credit note {correction_tag} on {invoice_id}",
            lambda *_: self.client.v1.credit_notes.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        return str(note.id)

    # -- ownership checks (customer bindings, mapping verification) -------------

    def customer_exists(self, customer_id: str) -> bool:
        """True when Stripe has this customer and it is not deleted."""
        customer = self._retrieve_or_none(
            f"retrieve customer {customer_id}",
            lambda: self.client.v1.customers.retrieve(customer_id),
        )
        return customer is not None and not bool(getattr(customer, "deleted", False))

    def item_owner(self, item_id: str) -> ItemOwner | None:
        """The price and customer of a subscription item, or None when Stripe has none."""
        item = self._retrieve_or_none(
            f"retrieve subscription item {item_id}",
            lambda: self.client.v1.subscription_items.retrieve(item_id),
        )
        if item is None:
            return None
        sub_id = item.subscription
        sub = self._call(
            f"retrieve subscription {sub_id}",
            lambda *_: self.client.v1.subscriptions.retrieve(sub_id),
        )
        customer = sub.customer
        return ItemOwner(
            item_id=item.id,
            price_id=item.price.id,
            customer_id=customer if isinstance(customer, str) else customer.id,
        )


def _clock_id_of(customer: Any) -> str | None:
    clock = customer.test_clock
    return clock if isinstance(clock, str) or clock is None else str(clock.id)


def _correction_tag(metadata: object) -> str | None:
    """The `stripemeter_correction` metadata value of a Stripe object, if any."""
    if not metadata or CORRECTION_METADATA_KEY not in metadata:  # type: ignore[operator]
        return None
    return str(metadata[CORRECTION_METADATA_KEY])  # type: ignore[index]


def _is_duplicate_identifier(exc: stripe.InvalidRequestError) -> bool:
    """Stripe's refusal of an identifier it already has ("already pushed")."""
    if exc.code == "resource_already_exists":
        return True
    message = (exc.user_message or str(exc)).lower()
    return getattr(exc, "param", None) == "identifier" and "already" in message


@dataclass(frozen=True)
class ItemOwner:
    """Whose a subscription item is: its price and its customer."""

    item_id: str
    price_id: str
    customer_id: str
