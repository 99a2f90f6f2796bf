"""Webhook endpoints and the delivery of recorded events to them."""

from __future__ import annotations

from stripe_emulator.routing import Router


def register(router: Router) -> None:
    """No webhook routes yet."""
    del router
