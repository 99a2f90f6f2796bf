"""Unit tests of the SDK-annotation checker: tiny synthetic classes and real SDK classes."""

# The synthetic classes spell annotations the way the generated SDK does (typing.List,
# Optional, quoted forward refs), so that the checker is tested on those forms.
# ruff: noqa: UP006, UP007, UP035, UP037, UP045

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Literal, Optional, Union

import stripe
from stripe import ListObject, StripeObject
from stripe._object_classes import OBJECT_CLASSES, get_object_class

from tests.stripe_emulator.sdk_schema import OMITTED, Tally, check, fields


class Widget(StripeObject):
    OBJECT_NAME: ClassVar[Literal["widget"]] = "widget"

    class Size(StripeObject):
        width: int
        unit: Optional[Literal["cm", "in"]]

    id: str
    object: Literal["widget"]
    size: Size
    tags: List[str]
    metadata: Dict[str, str]
    ratio: float
    active: bool
    note: Optional[str]
    owner: Union[str, "Widget", None]
    children: ListObject["Widget"]
    deleted: Optional[Literal[True]]


def widget(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "wd_1",
        "object": "widget",
        "size": {"width": 3, "unit": None},
        "tags": ["a"],
        "metadata": {"k": "v"},
        "ratio": 1,
        "active": True,
        "note": None,
        "owner": "wd_0",
        "children": {"object": "list", "data": [], "has_more": False, "url": "/v1/widgets"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_conforming_synthetic_object_has_no_problems_and_is_counted() -> None:
    tally = Tally()
    assert check(widget(), Widget, tally=tally) == []
    # widget + size + children list object; 11 + 2 + 4 fields
    assert (tally.objects, tally.fields) == (3, 17)


def test_missing_unexpected_and_null_fields_are_reported_by_path() -> None:
    obj = widget(note=..., extra=1, size={"width": None, "unit": None})
    assert sorted(check(obj, Widget)) == [
        "widget.extra: unexpected",
        "widget.note: missing",
        "widget.size.width: null in a non-nullable field",
    ]


def test_json_types_literals_and_dict_values_are_checked() -> None:
    obj = widget(
        active=1, ratio="1.0", tags=["a", 2], metadata={"k": 5}, size={"width": True, "unit": "mm"}
    )
    assert sorted(check(obj, Widget)) == [
        "widget.active: expected bool, got int",
        "widget.metadata.k: expected str, got int",
        "widget.ratio: expected float, got string",
        "widget.size.unit: 'mm' not one of ['cm', 'in']",
        "widget.size.width: expected int, got bool",
        "widget.tags[1]: expected str, got int",
    ]


def test_expandable_field_accepts_an_id_or_the_expanded_object() -> None:
    assert check(widget(owner=widget(id="wd_0")), Widget) == []
    assert check(widget(owner=None), Widget) == []
    assert check(widget(owner=widget(id=None)), Widget) == [
        "widget.owner.id: null in a non-nullable field"
    ]
    assert check(widget(owner=7), Widget) != []


def test_list_envelope_must_be_exact_and_its_items_are_checked() -> None:
    children = {
        "object": "list",
        "data": [widget(id="wd_2", note=...)],
        "has_more": False,
        "url": "/v1/widgets",
        "total_count": 1,
    }
    assert sorted(check(widget(children=children), Widget)) == [
        "widget.children.data[0].note: missing",
        "widget.children.total_count: unexpected",
    ]
    assert check(widget(children={"object": "lst", "data": [], "url": "/"}), Widget) == [
        "widget.children.has_more: missing",
        "widget.children.object: 'lst' is not 'list'",
    ]


def test_deleted_object_is_exactly_id_object_deleted() -> None:
    assert check({"id": "wd_1", "object": "widget", "deleted": True}, Widget) == []
    assert check({"id": "wd_1", "object": "widget", "deleted": True, "note": None}, Widget) == [
        "widget.note: unexpected"
    ]


def test_omitted_table_allows_listed_optional_fields_to_be_absent() -> None:
    obj = widget(note=...)
    assert check(obj, Widget, omitted={**OMITTED, "Widget.note": "test"}) == []
    assert (
        check(widget(size={"width": 1}), Widget, omitted={**OMITTED, "Widget.Size.unit": "test"})
        == []
    )


def real_meter() -> dict[str, Any]:
    return {
        "id": "mtr_1",
        "object": "billing.meter",
        "created": 1,
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"},
        "display_name": "API calls",
        "event_name": "api_calls",
        "event_time_window": None,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": 1,
        "value_settings": {"event_payload_key": "value"},
    }


def test_a_correct_real_meter_has_no_problems() -> None:
    tally = Tally()
    assert check(real_meter(), stripe.billing.Meter, tally=tally) == []
    assert tally.objects == 5 and tally.fields == 13 + 2 + 1 + 1 + 1


def test_real_meter_defects_are_each_detected() -> None:
    meter = real_meter()
    del meter["event_time_window"]
    meter["extra"] = True
    meter["display_name"] = None
    meter["created"] = "1"
    meter["default_aggregation"] = {"formula": "median"}
    assert sorted(check(meter, stripe.billing.Meter)) == [
        "billing.meter.created: expected int, got string",
        "billing.meter.default_aggregation.formula: 'median' not one of ['count', 'last', 'sum']",
        "billing.meter.display_name: null in a non-nullable field",
        "billing.meter.event_time_window: missing",
        "billing.meter.extra: unexpected",
    ]


def test_real_invoice_nested_missing_field_is_reported_with_its_path() -> None:
    problems = check(
        {"object": "invoice", "payment_settings": {"default_mandate": None}}, stripe.Invoice
    )
    assert "invoice.payment_settings.payment_method_types: missing" in problems
    assert "invoice.payment_settings.payment_method_options: missing" in problems
    assert "invoice.lines: missing" in problems
    assert "invoice.payments: missing" not in problems  # OMITTED: includable list


def test_real_list_with_total_count_is_rejected() -> None:
    envelope = {
        "object": "list",
        "data": [real_meter()],
        "has_more": False,
        "url": "/v1/billing/meters",
        "total_count": 1,
    }
    assert check(envelope, ListObject[stripe.billing.Meter]) == ["list.total_count: unexpected"]


def real_card_pm(**changes: Any) -> dict[str, Any]:
    pm: dict[str, Any] = {
        "id": "pm_1",
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": None,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": None,
        "created": 1,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }
    pm.update(changes)
    return pm


def test_the_hash_named_by_type_is_required_and_its_siblings_may_be_absent() -> None:
    pm = real_card_pm()
    del pm["card"]
    assert check(pm, stripe.PaymentMethod) == ["payment_method.card: missing"]


def test_decimal_fields_must_be_decimal_strings() -> None:
    price = {"unit_amount_decimal": 5}
    problems = check(price, stripe.Price)
    assert "price.unit_amount_decimal: expected a decimal string, got 5" in problems
    assert not [p for p in check({"unit_amount_decimal": "0.5"}, stripe.Price) if "decimal" in p]


def test_an_expanded_field_is_checked_as_the_object_not_as_an_id() -> None:
    problems = check({"customer": {"object": "customer", "id": "cus_1"}}, stripe.Invoice)
    assert "invoice.customer.email: missing" in problems
    assert not [p for p in problems if p.startswith("invoice.customer: expected")]


def clock(status: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "clock_1",
        "object": "test_helpers.test_clock",
        "created": 1,
        "deletes_after": 2,
        "frozen_time": 1,
        "livemode": False,
        "name": None,
        "status": status,
        "status_details": details,
    }


def test_conditional_omission_is_checked_both_ways_from_the_enclosing_object() -> None:
    advancing = {"advancing": {"target_frozen_time": 5}}
    assert check(clock("ready", {}), stripe.test_helpers.TestClock) == []
    assert check(clock("advancing", advancing), stripe.test_helpers.TestClock) == []
    assert check(clock("advancing", {}), stripe.test_helpers.TestClock) == [
        "test_helpers.test_clock.status_details.advancing: missing"
    ]
    assert check(clock("ready", advancing), stripe.test_helpers.TestClock) == [
        "test_helpers.test_clock.status_details.advancing: present, but Stripe omits it here"
        " (only while the clock advances)"
    ]


def test_sibling_variant_hashes_and_metered_quantity_must_be_absent() -> None:
    pm = real_card_pm(card=None, sepa_debit=None)
    assert check(pm, stripe.PaymentMethod) == [
        "payment_method.sepa_debit: present, but Stripe omits it here"
        " (only the hash named by `type`)"
    ]
    metered = {"price": {"recurring": {"usage_type": "metered"}}, "quantity": 1}
    licensed = {"price": {"recurring": {"usage_type": "licensed"}}}
    assert (
        "subscription_item.quantity: present, but Stripe omits it here (omitted on metered items)"
        in check(metered, stripe.SubscriptionItem)
    )
    assert "subscription_item.quantity: missing" in check(licensed, stripe.SubscriptionItem)


def test_omitted_unless_set_fields_are_never_null() -> None:
    problems = check({"business_name": None}, stripe.Customer)
    assert (
        "customer.business_name: null, but Stripe omits it instead (omitted unless set)" in problems
    )
    assert "customer.individual_name: missing" not in problems


def test_every_v1_sdk_class_and_nested_class_resolves_its_annotations() -> None:
    seen: set[type] = set()
    todo: list[type] = [get_object_class("V1", name) for name in OBJECT_CLASSES]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        fields(cls)  # raises NameError on an unresolvable forward reference
        todo += [
            inner
            for inner in vars(cls).values()
            if isinstance(inner, type)
            and issubclass(inner, StripeObject)
            and inner.__qualname__.startswith(cls.__qualname__ + ".")
        ]
    assert len(seen) > 1000
