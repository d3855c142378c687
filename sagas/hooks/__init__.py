"""Outbound webhooks: subscriptions to saga and approval outcomes, signed deliveries, their log."""
