"""Demo actions for order fulfilment; each is idempotent by the idempotency key.

Failures can be injected from the saga input:
`{"simulate": {"process_payment": "fail" | "error_twice" | "timeout" | "fail_compensation"
| "fail_compensation_twice"}}` — the key is the step name.
"""

import time
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from sagas.actions import StepFailed, action

from .models import Attempt, Notification, Payment, Reservation, Shipment, Stock


def _simulate(ctx):
    return (ctx.input.get("simulate") or {}).get(ctx.step)


def _inject(ctx):
    """Raise or stall as the input asks, before any effect."""
    mode = _simulate(ctx)
    if ctx.compensating:
        if mode == "fail_compensation":
            raise RuntimeError(f"{ctx.step}: compensation service unavailable")
        if mode == "fail_compensation_twice" and ctx.attempt <= 2:
            raise RuntimeError(
                f"{ctx.step}: compensation service unavailable (attempt {ctx.attempt})"
            )
        return
    if mode == "fail":
        raise StepFailed(f"{ctx.step}: refused by the service")
    if mode == "error_twice" and ctx.attempt <= 2:
        raise ConnectionError(f"{ctx.step}: service unreachable (attempt {ctx.attempt})")
    if mode == "timeout":
        time.sleep(float(ctx.input.get("simulate_seconds", 3)))


def _log(ctx, name, applied):
    Attempt.objects.create(
        key=ctx.idempotency_key, action=name, attempt=ctx.attempt, applied=applied
    )


def _order(ctx):
    return str(ctx.input.get("order_id", ""))


@action("demo.inventory.reserve", compensation="demo.inventory.release")
def reserve_inventory(ctx):
    """Reserve `quantity` (default 1) of `sku` (default WIDGET) for the order."""
    _inject(ctx)
    sku = str(ctx.input.get("sku", "WIDGET"))
    quantity = int(ctx.input.get("quantity", 1))
    with transaction.atomic():
        reservation = Reservation.objects.filter(key=ctx.idempotency_key).first()
        applied = reservation is None
        if applied:
            stock, _ = Stock.objects.select_for_update().get_or_create(
                sku=sku, defaults={"available": 1000}
            )
            if stock.available < quantity:
                raise StepFailed(f"only {stock.available} {sku} left, {quantity} wanted")
            stock.available -= quantity
            stock.save(update_fields=["available"])
            reservation = Reservation.objects.create(
                key=ctx.idempotency_key, sku=sku, quantity=quantity
            )
        _log(ctx, "reserve", applied)
    return {"reservation": reservation.pk, "sku": sku, "quantity": quantity}


@action("demo.inventory.release")
def release_reservation(ctx):
    """Give the reserved stock back (nothing to do if nothing was reserved)."""
    _inject(ctx)
    with transaction.atomic():
        reservation = (
            Reservation.objects.select_for_update().filter(key=ctx.idempotency_key).first()
        )
        applied = bool(reservation and not reservation.released)
        if applied:
            Stock.objects.filter(sku=reservation.sku).update(
                available=F("available") + reservation.quantity
            )
            reservation.released = True
            reservation.save(update_fields=["released"])
        _log(ctx, "release", applied)
    return {"released": applied}


@action("demo.payments.charge", compensation="demo.payments.refund")
def process_payment(ctx):
    """Charge `amount` for the order, or the amount the manager approved on the approval's form."""
    _inject(ctx)
    approved = ((ctx.results.get("manager_approval") or {}).get("data") or {}).get(
        "approved_amount"
    )
    amount = ctx.input.get("amount", 0) if approved is None else approved
    with transaction.atomic():
        payment, applied = Payment.objects.get_or_create(
            key=ctx.idempotency_key,
            defaults={"order_id": _order(ctx), "amount": Decimal(str(amount))},
        )
        _log(ctx, "charge", applied)
    return {"payment": payment.pk, "amount": str(payment.amount)}


@action("demo.payments.refund")
def refund_payment(ctx):
    """Refund the charge (nothing to do if nothing was charged)."""
    _inject(ctx)
    with transaction.atomic():
        applied = bool(
            Payment.objects.filter(key=ctx.idempotency_key, refunded=False).update(refunded=True)
        )
        _log(ctx, "refund", applied)
    return {"refunded": applied}


@action("demo.shipping.create", compensation="demo.shipping.cancel")
def create_shipment(ctx):
    """Book a shipment for the order."""
    _inject(ctx)
    with transaction.atomic():
        shipment, applied = Shipment.objects.get_or_create(
            key=ctx.idempotency_key, defaults={"order_id": _order(ctx)}
        )
        _log(ctx, "ship", applied)
    return {"shipment": shipment.pk, "tracking": f"TRK{shipment.pk:08d}"}


@action("demo.shipping.cancel")
def cancel_shipment(ctx):
    """Cancel the shipment (nothing to do if none was booked)."""
    _inject(ctx)
    with transaction.atomic():
        applied = bool(
            Shipment.objects.filter(key=ctx.idempotency_key, cancelled=False).update(cancelled=True)
        )
        _log(ctx, "cancel_shipment", applied)
    return {"cancelled": applied}


@action("demo.notify.confirmation", compensation="demo.notify.cancellation")
def send_confirmation(ctx):
    """Put an order confirmation in the outbox."""
    _inject(ctx)
    return _notify(ctx, "confirmation", f"Order {_order(ctx)} is on its way.")


@action("demo.notify.cancellation")
def send_cancellation_notice(ctx):
    """Put a cancellation notice in the outbox."""
    _inject(ctx)
    return _notify(ctx, "cancellation", f"Order {_order(ctx)} was cancelled.")


def _notify(ctx, kind, body, *, about=None):
    """A notification in the outbox, once per step and kind; `about` defaults to the order."""
    key = f"{ctx.idempotency_key}:{kind}"
    with transaction.atomic():
        note, applied = Notification.objects.get_or_create(
            key=key, defaults={"kind": kind, "order_id": about or _order(ctx), "body": body}
        )
        _log(ctx, kind, applied)
    return {"notification": note.pk}


@action("demo.noop")
def noop(ctx):
    """Does nothing; for benchmarks and examples."""
    return None


# --- purchase requests (sagas/demo/workflows/purchase_request.yaml) -----------------


def _request(ctx):
    return str(ctx.input.get("request_id") or ctx.input.get("vendor", ""))


@action("demo.budget.reserve", compensation="demo.budget.release")
def reserve_budget(ctx):
    """Reserve the request's amount in the budget (an outbox line says so)."""
    _inject(ctx)
    return _notify(
        ctx, "budget_reserved", f"€{ctx.input.get('amount')} reserved", about=_request(ctx)
    )


@action("demo.budget.release")
def release_budget(ctx):
    _inject(ctx)
    return _notify(
        ctx, "budget_released", f"€{ctx.input.get('amount')} released", about=_request(ctx)
    )


@action("demo.budget.check")
def check_budget(ctx):
    """Finance's automatic check before a person looks (simulate: fail to refuse)."""
    _inject(ctx)
    return {"within_budget": True}


@action("demo.legal.screen", compensation="demo.legal.unscreen")
def screen_request(ctx):
    """Legal's automatic screening, recorded so that its undo is visible."""
    _inject(ctx)
    return _notify(ctx, "legal_screened", "screened by legal", about=_request(ctx))


@action("demo.legal.unscreen")
def unscreen_request(ctx):
    _inject(ctx)
    return _notify(ctx, "legal_screening_withdrawn", "screening withdrawn", about=_request(ctx))


@action("demo.budget.book", compensation="demo.budget.unbook")
def book_budget(ctx):
    """Book the reserved amount as spent."""
    _inject(ctx)
    return _notify(ctx, "budget_booked", f"€{ctx.input.get('amount')} booked", about=_request(ctx))


@action("demo.budget.unbook")
def unbook_budget(ctx):
    _inject(ctx)
    return _notify(
        ctx, "budget_unbooked", f"€{ctx.input.get('amount')} unbooked", about=_request(ctx)
    )


@action("demo.lines.reserve", compensation="demo.lines.release")
def reserve_line(ctx):
    """Reserve one line of the request (`item`: {sku, qty}) from stock."""
    _inject(ctx)
    item = ctx.item or {}
    sku, quantity = str(item.get("sku", "WIDGET")), int(item.get("qty", 1))
    with transaction.atomic():
        reservation = Reservation.objects.filter(key=ctx.idempotency_key).first()
        if reservation is None:
            if not Stock.objects.filter(sku=sku, available__gte=quantity).update(
                available=F("available") - quantity
            ):
                raise StepFailed(f"not enough {sku} in stock for {quantity}")
            reservation = Reservation.objects.create(
                key=ctx.idempotency_key, sku=sku, quantity=quantity
            )
        _log(ctx, "reserve_line", True)
    return {"reservation": reservation.pk, "sku": sku, "qty": quantity}


@action("demo.lines.release")
def release_line(ctx):
    _inject(ctx)
    with transaction.atomic():
        reservation = Reservation.objects.filter(key=ctx.idempotency_key, released=False).first()
        if reservation is not None:
            Stock.objects.filter(sku=reservation.sku).update(
                available=F("available") + reservation.quantity
            )
            reservation.released = True
            reservation.save(update_fields=["released"])
        _log(ctx, "release_line", reservation is not None)
    return {"released": reservation is not None}


@action("demo.vendor.register", compensation="demo.vendor.deregister")
def register_vendor(ctx):
    """Register the vendor (a child saga's step)."""
    _inject(ctx)
    if ctx.input.get("vendor") == "blocked":
        raise StepFailed("the vendor is on the blocked list")
    return _notify(
        ctx,
        "vendor_registered",
        f"vendor {ctx.input.get('vendor')} registered",
        about=_request(ctx),
    )


@action("demo.vendor.deregister")
def deregister_vendor(ctx):
    _inject(ctx)
    return _notify(
        ctx, "vendor_deregistered", f"vendor {ctx.input.get('vendor')} removed", about=_request(ctx)
    )
