"""Check a JSON object against the stripe SDK's annotations for the pinned API version.

The installed `stripe` package is the schema: every resource class (and each nested
class) annotates the fields of this API version. `check(obj, cls)` walks
`typing.get_type_hints(cls)` recursively and returns readable problems such as
`invoice.payment_settings.payment_method_types: missing`.

Rules:

- a non-`Optional` field must be present and non-null;
- an `Optional` field must be present (null allowed) unless `OMITTED` lists it: Stripe
  leaves those keys out in some cases, which the annotations cannot express. Where the
  case is decidable from the object (an `Omit` with `absent`), the key must be absent in
  that case and present otherwise; rows marked "either" accept both;
- no key outside the annotations (SDK internals — `OBJECT_NAME`, `_*` — are not fields);
- JSON types: `int` is a non-bool integer, `float` any non-bool number, `Literal[...]` one
  of its values; an open enum `Union[Literal[...], str]` (the SDK's room for future values)
  is checked as its `Literal`, since the emulator must send a documented value; `List[X]`,
  `Dict[str, X]` / `UntypedStripeObject[X]` (metadata) a JSON object of X;
  `ExpandableField[X]` (= `Union[str, X]`) an id or the expanded object;
- `ListObject[X]` is exactly `{object: "list", data, has_more, url}`: no `total_count`;
- a deleted object (`deleted: true` where the class annotates `deleted`) is exactly
  `{id, object, deleted}` — Stripe's delete endpoints "return an object with a deleted
  parameter on success" (API reference, e.g. "Delete a customer"), nothing else.

Omitted vs null (the `OMITTED` table). An `Optional` field Stripe may leave out is one its
OpenAPI spec does not list as `required`; the evidence per row is Stripe's API reference
(docs corpus), the field's SDK docstring (Stripe's OpenAPI text), and stripe-mock's fixture
objects, generated from that spec (github:stripe/openapi `openapi/fixtures3.json`, 2026-07-29;
a field absent there is not `required`). That fixture predates `endive`, so a field new in
`endive` is kept at the default rule (present, null) unless the reference says otherwise.

| field                                   | absent when (evidence)                               |
|-----------------------------------------|------------------------------------------------------|
| `*.deleted`                             | always on live objects ("Always true for a deleted   |
|                                         | object"; deleted objects are checked as above)       |
| `SubscriptionItem.quantity`             | the item's price is metered (subscriptions.py)       |
| `Subscription.BillingMode.updated_at`   | either: until the billing mode is changed            |
| `Invoice.payments`                      | either: includable, only with `expand[]=payments`    |
| `Customer.cash_balance`, `.sources`,    | either: includable ("Expandable" objects in the      |
| `.subscriptions`, `.tax`, `.tax_ids`,   | reference; its example customer has none of them)    |
| `.invoice_credit_balance`               |                                                      |
| `Customer.business_name`,               | either, never null: omitted unless set (not in the   |
| `.individual_name`                      | reference's example customer; not `required`)        |
| `Price.currency_options`, `Price.tiers`,| either: includable, only with `expand[]` (the        |
| `Plan.tiers`                            | reference's example price has neither)               |
| `PaymentMethod.<type>`                  | `type` names another variant (see below)             |
| `PaymentMethod.radar_options`           | either: not `required`; absent from the fixture      |
| `PaymentMethod.Card.description`,       | always: "For internal use only and not typically     |
| `.iin`, `.issuer`                       | available in standard API requests"                  |
| `Invoice.Issuer.account`,               | `type` is not `account`: "The connected account      |
| `Subscription.InvoiceSettings.Issuer.account` | being referenced when `type` is `account`"     |
| `Invoice.Parent.SubscriptionDetails.subscription_proration_date` | either: "Only set  |
|                                         | for upcoming invoices that preview prorations"       |
| `TestClock.StatusDetails.advancing`     | the clock is not `advancing` (fixture:               |
|                                         | `status_details: {}` on a ready clock)               |
| `Event.account`, `Event.context`        | either: Connect / context events only; absent in the |
|                                         | fixture                                              |
| `Event.Data.previous_attributes`        | the event type is not `*.updated` ("only included in |
|                                         | events of type *.updated", the spec's description) |
| `WebhookEndpoint.secret`                | either: "Only returned at creation"                  |

Polymorphic objects name their variant in `type` (`payment_method.type == "card"`,
`invoice.parent.type == "subscription_details"`, `issuer.type == "account"`): the field
named by `type` must be present even when `OMITTED` lists it; siblings may be absent.

Everything else `Optional` is present and null when unset.
"""

from __future__ import annotations

import ast
import decimal
import functools
import importlib
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from stripe import ListObject, PaymentMethod, StripeObject
from stripe._stripe_object import UntypedStripeObject

Where = Callable[[dict[str, Any], tuple[dict[str, Any], ...]], bool]


@dataclass(frozen=True)
class Omit:
    """An `Optional` field Stripe leaves out, and when.

    `absent(obj, parents)` (the object holding the field, then its enclosing objects,
    nearest first) decides: True, the key must be absent; False, it must be present.
    Without it either is accepted. `nullable=False`: when present, never null.
    """

    reason: str
    absent: Where | None = None
    nullable: bool = True


def _always(obj: dict[str, Any], parents: tuple[dict[str, Any], ...]) -> bool:
    return True


def _metered(obj: dict[str, Any], parents: tuple[dict[str, Any], ...]) -> bool:
    price = obj.get("price")
    recurring = price.get("recurring") if isinstance(price, dict) else None
    return isinstance(recurring, dict) and recurring.get("usage_type") == "metered"


def _not_type(variant: str) -> Where:
    return lambda obj, parents: obj.get("type") != variant


def _parent_not(key: str, test: Callable[[Any], bool]) -> Where:
    return lambda obj, parents: not (parents and test(parents[0].get(key)))


_INCLUDABLE = "includable: returned only when expanded"
_PM_TYPES = get_args(get_args(PaymentMethod.__annotations__["type"])[0])
OMITTED: dict[str, str | Omit] = {
    "*.deleted": Omit("present only on deleted objects", _always),
    "SubscriptionItem.quantity": Omit("omitted on metered items", _metered),
    "Subscription.BillingMode.updated_at": "omitted until the billing mode is changed",
    "Invoice.payments": _INCLUDABLE,
    **{
        f"Customer.{name}": _INCLUDABLE
        for name in (
            "cash_balance", "sources", "subscriptions", "tax", "tax_ids", "invoice_credit_balance"
        )
    },
    "Customer.business_name": Omit("omitted unless set", nullable=False),
    "Customer.individual_name": Omit("omitted unless set", nullable=False),
    "Price.currency_options": _INCLUDABLE,
    "Price.tiers": _INCLUDABLE,
    "Plan.tiers": _INCLUDABLE,
    **{
        f"PaymentMethod.{name}": Omit("only the hash named by `type`", _not_type(name))
        for name in _PM_TYPES
    },
    "PaymentMethod.radar_options": "not required; absent from Stripe's fixture",
    **{
        f"PaymentMethod.Card.{name}": Omit("internal use only", _always)
        for name in ("description", "iin", "issuer")
    },
    "Invoice.Issuer.account": Omit("only when issuer.type is account", _not_type("account")),
    "Subscription.InvoiceSettings.Issuer.account": Omit(
        "only when issuer.type is account", _not_type("account")
    ),
    "Invoice.Parent.SubscriptionDetails.subscription_proration_date": "proration previews only",
    "TestClock.StatusDetails.advancing": Omit(
        "only while the clock advances", _parent_not("status", lambda s: s == "advancing")
    ),
    "Event.account": "Connect events only",
    "Event.context": "context events only",
    "Event.Data.previous_attributes": Omit(
        "*.updated events only",
        _parent_not("type", lambda t: isinstance(t, str) and t.endswith(".updated")),
    ),
    "WebhookEndpoint.secret": "returned at creation only",
}  # fmt: skip

LIST_KEYS = ("object", "data", "has_more", "url")
DELETED_KEYS = frozenset({"id", "object", "deleted"})


@dataclass
class Tally:
    """How much a check looked at: JSON objects walked and annotated fields examined."""

    objects: int = 0
    fields: int = 0

    def add(self, other: Tally) -> None:
        """Fold `other`'s counts into this tally."""
        self.objects += other.objects
        self.fields += other.fields


def check(
    obj: dict[str, Any],
    cls: type,
    *,
    tally: Tally | None = None,
    omitted: Mapping[str, str | Omit] = OMITTED,
    path: str | None = None,
) -> list[str]:
    """Problems of `obj` against SDK class `cls` (empty when it conforms), counted in `tally`."""
    walker = _Walker(omitted, tally if tally is not None else Tally())
    return walker.value(obj, cls, path or root_name(cls))


def root_name(cls: type) -> str:
    """The path prefix for `cls`: its Stripe object name (`invoice`), else its class name."""
    name = getattr(cls, "OBJECT_NAME", None)
    if isinstance(name, str) and name:
        return name
    return cls.__name__


def fields(cls: type) -> dict[str, Any]:
    """The annotated JSON fields of an SDK class (resolved, SDK internals dropped)."""
    return dict(_hints(cls))


class _Walker:
    def __init__(self, omitted: Mapping[str, str | Omit], tally: Tally) -> None:
        self.omitted = omitted
        self.tally = tally
        self.parents: list[dict[str, Any]] = []

    def value(self, value: Any, tp: Any, path: str) -> list[str]:
        if tp is Any:
            return []
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is Union or origin is types.UnionType:
            return self.union(value, [a for a in args if a is not type(None)], tp, path)
        if value is None:
            return [f"{path}: null in a non-nullable field"]
        if origin is Literal:
            if any(value == a and type(value) is type(a) for a in args):
                return []
            return [f"{path}: {value!r} not one of {list(args)!r}"]
        if origin is list or tp is list:
            if not isinstance(value, list):
                return [f"{path}: expected a list, got {_kind(value)}"]
            item = args[0] if args else Any
            problems: list[str] = []
            for n, element in enumerate(value):
                problems += self.value(element, item, f"{path}[{n}]")
            return problems
        if origin is dict or tp is dict:
            return self.mapping(value, args[1] if len(args) == 2 else Any, path)
        cls = origin if isinstance(origin, type) else tp
        if isinstance(cls, type) and issubclass(cls, UntypedStripeObject):
            return self.mapping(value, args[0] if args else Any, path)
        if isinstance(cls, type) and issubclass(cls, ListObject):
            return self.list_object(value, args[0] if args else Any, path)
        if isinstance(cls, type) and issubclass(cls, StripeObject):
            return self.stripe_object(value, cls, path)
        return self.scalar(value, tp, path)

    def scalar(self, value: Any, tp: Any, path: str) -> list[str]:
        if tp is decimal.Decimal:  # the SDK decodes decimal strings (`_field_encodings`)
            if isinstance(value, str) and _is_decimal(value):
                return []
            return [f"{path}: expected a decimal string, got {value!r}"]
        ok = {
            str: isinstance(value, str),
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
        }.get(tp)
        if ok is None:
            return [f"{path}: unsupported annotation {tp!r}"]
        return [] if ok else [f"{path}: expected {tp.__name__}, got {_kind(value)}"]

    def mapping(self, value: Any, item: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {_kind(value)}"]
        problems: list[str] = []
        for key, element in value.items():
            problems += self.value(element, item, f"{path}.{key}")
        return problems

    def union(self, value: Any, members: list[Any], tp: Any, path: str) -> list[str]:
        if value is None:
            return [] if type(None) in get_args(tp) else [f"{path}: null in a non-nullable field"]
        if str in members and any(_is_string_literal(m) for m in members):
            members = [m for m in members if m is not str]  # open enum: see the module docstring
        if len(members) == 1:
            return self.value(value, members[0], path)
        best: tuple[list[str], Tally] | None = None
        for member in _by_preference(value, members):
            trial = _Walker(self.omitted, Tally())
            trial.parents = self.parents
            problems = trial.value(value, member, path)
            if not problems:
                self.tally.add(trial.tally)
                return []
            if best is None or len(problems) < len(best[0]):
                best = (problems, trial.tally)
        assert best is not None
        self.tally.add(best[1])
        return best[0]

    def list_object(self, value: Any, item: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected a list object, got {_kind(value)}"]
        self.tally.objects += 1
        self.tally.fields += len(LIST_KEYS)
        problems = [f"{path}.{key}: missing" for key in LIST_KEYS if key not in value]
        problems += [f"{path}.{key}: unexpected" for key in value if key not in LIST_KEYS]
        if "object" in value and value["object"] != "list":
            problems.append(f"{path}.object: {value['object']!r} is not 'list'")
        if "has_more" in value:
            problems += self.value(value["has_more"], bool, f"{path}.has_more")
        if "url" in value:
            problems += self.value(value["url"], str, f"{path}.url")
        if "data" in value:
            problems += self.value(value["data"], list[item], f"{path}.data")
        return problems

    def stripe_object(self, value: Any, cls: type, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {_kind(value)}"]
        hints = _hints(cls)
        self.tally.objects += 1
        if value.get("deleted") is True and "deleted" in hints:
            self.tally.fields += len(DELETED_KEYS)
            problems = [f"{path}.{key}: missing" for key in sorted(DELETED_KEYS - value.keys())]
            problems += [f"{path}.{key}: unexpected" for key in value if key not in DELETED_KEYS]
            for key in DELETED_KEYS & value.keys():
                problems += self.value(value[key], hints[key], f"{path}.{key}")
            return problems
        problems = []
        parents = tuple(reversed(self.parents))
        self.parents.append(value)
        for name, tp in hints.items():
            self.tally.fields += 1
            problems += self.field(value, cls, name, tp, f"{path}.{name}", parents)
        self.parents.pop()
        problems += [f"{path}.{key}: unexpected" for key in value if key not in hints]
        return problems

    def field(
        self,
        obj: dict[str, Any],
        cls: type,
        name: str,
        tp: Any,
        where: str,
        parents: tuple[dict[str, Any], ...],
    ) -> list[str]:
        rule = self.rule(cls, name)
        variant = obj.get("type") == name  # the variant hash of a polymorphic object
        absent = None if rule is None or rule.absent is None else rule.absent(obj, parents)
        if name not in obj:
            if rule is None or variant or absent is False:
                return [f"{where}: missing"]
            return []
        if absent and not variant:
            assert rule is not None
            return [f"{where}: present, but Stripe omits it here ({rule.reason})"]
        if rule is not None and not rule.nullable and obj[name] is None:
            return [f"{where}: null, but Stripe omits it instead ({rule.reason})"]
        return self.value(obj[name], tp, where)

    def rule(self, cls: type, name: str) -> Omit | None:
        found = self.omitted.get(f"{cls.__qualname__}.{name}", self.omitted.get(f"*.{name}"))
        return Omit(found) if isinstance(found, str) else found


def _by_preference(value: Any, members: list[Any]) -> list[Any]:
    """Union members to try for `value`: for a JSON object only object types (an expanded
    `ExpandableField` is checked as the object, not as an id), the one naming
    `value["object"]` first (e.g. Card vs Source)."""
    if not isinstance(value, dict):
        return members
    shaped = [m for m in members if _is_object_type(m)] or members
    named = [m for m in shaped if getattr(m, "OBJECT_NAME", None) == value.get("object")]
    return named + [m for m in shaped if m not in named]


def _is_object_type(tp: Any) -> bool:
    cls = get_origin(tp) or tp
    return cls is dict or (isinstance(cls, type) and issubclass(cls, StripeObject))


def _is_decimal(text: str) -> bool:
    try:
        return decimal.Decimal(text).is_finite()
    except decimal.InvalidOperation:
        return False


def _is_string_literal(tp: Any) -> bool:
    return get_origin(tp) is Literal and all(isinstance(a, str) for a in get_args(tp))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "bool",
        int: "int",
        float: "float",
        str: "string",
        list: "list",
        dict: "object",
    }.get(type(value), type(value).__name__)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules[cls.__module__]
    globalns = {**vars(module), **_deferred_imports(module.__name__), "StripeObject": StripeObject}
    localns: dict[str, Any] = {}
    scope: Any = module
    for part in cls.__qualname__.split("."):
        scope = getattr(scope, part, None)
        if scope is None:
            break
        localns.update(vars(scope))
    resolved = typing.get_type_hints(cls, globalns=globalns, localns=localns)
    return {
        name: tp
        for name, tp in resolved.items()
        if not name.startswith("_") and name != "OBJECT_NAME" and get_origin(tp) is not ClassVar
    }


@functools.cache
def _deferred_imports(module_name: str) -> dict[str, Any]:
    """Names a generated SDK module imports only under `if TYPE_CHECKING:` (its forward refs)."""
    tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    names: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.ImportFrom) or stmt.module is None:
                continue
            if stmt.module.startswith("stripe.params"):
                continue  # request params: never in response annotations
            source = importlib.import_module(stmt.module)
            for alias in stmt.names:
                names[alias.asname or alias.name] = getattr(source, alias.name)
    return names
