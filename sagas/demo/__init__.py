"""Demo services with their own tables (stock, payments, shipments, outbox) and their actions."""
