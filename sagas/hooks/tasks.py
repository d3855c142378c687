"""django-q2 entry point for webhook deliveries; it carries only the delivery's id."""

from . import services


def deliver(delivery_id):
    return services.deliver(delivery_id)
