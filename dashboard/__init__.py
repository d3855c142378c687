"""The HTMX dashboard for operators and approvers."""
