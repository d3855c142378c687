"""Ledgers of the demo services; each effect is keyed by the saga step's idempotency key."""

from django.db import models


class Stock(models.Model):
    sku = models.CharField(max_length=50, unique=True)
    available = models.IntegerField(default=0)

    def __str__(self):
        return f"{self.sku}: {self.available}"


class Reservation(models.Model):
    key = models.CharField(max_length=300, unique=True)
    sku = models.CharField(max_length=50)
    quantity = models.PositiveIntegerField()
    released = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class Payment(models.Model):
    key = models.CharField(max_length=300, unique=True)
    order_id = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    refunded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class Shipment(models.Model):
    key = models.CharField(max_length=300, unique=True)
    order_id = models.CharField(max_length=100)
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class Notification(models.Model):
    """The outbox: one row per message, never sent twice for one key."""

    key = models.CharField(max_length=300, unique=True)
    kind = models.CharField(max_length=50)
    order_id = models.CharField(max_length=100)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)


class Attempt(models.Model):
    """Every call of a demo action, so tests can count attempts and effects."""

    key = models.CharField(max_length=300, db_index=True)
    action = models.CharField(max_length=100)
    attempt = models.PositiveIntegerField()
    applied = models.BooleanField(default=False)
    at = models.DateTimeField(auto_now_add=True)
