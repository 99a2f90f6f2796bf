"""Form decoding: Stripe's bracket syntax in bodies and query strings."""

from __future__ import annotations

import pytest

from stripe_emulator.errors import StripeError
from stripe_emulator.form import parse_form


def test_nested_keys_become_dicts() -> None:
    assert parse_form("invoice_settings[default_payment_method]=pm_1&metadata[a]=b") == {
        "invoice_settings": {"default_payment_method": "pm_1"},
        "metadata": {"a": "b"},
    }


def test_indexed_and_empty_bracket_arrays_decode_alike() -> None:
    assert parse_form("expand[0]=a&expand[1]=b") == {"expand": ["a", "b"]}
    assert parse_form("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}


def test_indexes_order_the_list_not_arrival() -> None:
    assert parse_form("items[1][price]=p2&items[0][price]=p1") == {
        "items": [{"price": "p1"}, {"price": "p2"}]
    }


def test_percent_encoded_keys_are_decoded() -> None:
    assert parse_form("expand%5B0%5D=customer&metadata%5Bk%5D=v%20w") == {
        "expand": ["customer"],
        "metadata": {"k": "v w"},
    }


def test_empty_value_is_kept_as_unset_marker() -> None:
    assert parse_form("metadata=&name=") == {"metadata": "", "name": ""}


def test_conflicting_shapes_are_refused_with_the_param_named() -> None:
    with pytest.raises(StripeError) as err:
        parse_form("a=1&a[b]=2")
    assert err.value.status == 400
    assert err.value.param == "a[b]"


def test_curl_style_object_arrays_group_keys_per_element() -> None:
    assert parse_form("items[][price]=a&items[][quantity]=2&items[][price]=b") == {
        "items": [{"price": "a", "quantity": "2"}, {"price": "b"}]
    }
