"""manage.py seed_demo: demo workflows, users and a few sagas in each state; safe to repeat."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

from sagas.demo.models import Stock
from sagas.models import Saga

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"

# Local demo accounts only; the README lists them.
USERS = [
    ("admin", "admin", ["operators"], True),
    ("operator", "operator", ["operators"], False),
    ("approver", "approver", ["managers"], False),
    ("approver2", "approver2", ["managers"], False),
    ("director", "director", ["directors"], False),
    # Named on expense approvals, and away: director decides in their place (approvals/away.py).
    ("finance", "finance", [], False),
    ("lawyer", "lawyer", ["legal"], False),
    ("controller", "controller", ["finance"], False),
]
GROUPS = ["operators", "managers", "directors", "legal", "finance"]


class Command(BaseCommand):
    help = "Create the demo workflows, users and groups, and a few sagas (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-sagas", action="store_true", help="only workflows and users")

    def handle(self, *args, no_sagas=False, **options):
        from sagas.engine import start_saga

        User = get_user_model()
        for name in GROUPS:
            Group.objects.get_or_create(name=name)
        for username, password, groups, staff in USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.email = f"{username}@example.com"
                user.is_staff = user.is_superuser = staff
                user.save()
            user.groups.add(*Group.objects.filter(name__in=groups))
        Stock.objects.get_or_create(sku="WIDGET", defaults={"available": 1000})
        self._away(User)
        files = sorted(str(p) for p in WORKFLOWS.glob("*.yaml"))
        call_command("loadworkflows", *files, stdout=self.stdout)
        if no_sagas:
            return
        operator = User.objects.get(username="operator")
        examples = [
            ("demo-1001", {"order_id": "1001", "customer": "ACME", "amount": 120}),
            (
                "demo-1002",
                {
                    "order_id": "1002",
                    "customer": "Globex",
                    "amount": 80,
                    "simulate": {"process_payment": "fail"},
                },
            ),
            (
                "demo-1003",
                {
                    "order_id": "1003",
                    "customer": "ACME",
                    "amount": 45,
                    "simulate": {"create_shipment": "error_twice"},
                },
            ),
            (
                "demo-1004",
                {
                    "order_id": "1004",
                    "customer": "Initech",
                    "amount": 300,
                    "simulate": {"create_shipment": "fail", "process_payment": "fail_compensation"},
                },
            ),
            # Above 1000: waits for a manager (approver or approver2) after reserving stock.
            ("demo-1005", {"order_id": "1005", "customer": "Globex", "amount": 12400}),
            ("demo-1006", {"order_id": "1006", "customer": "ACME", "amount": 2350, "quantity": 3}),
        ]
        created = 0
        for key, data in examples:
            _, new = start_saga(
                workflow="order_fulfillment",
                input=data,
                idempotency_key=key,
                correlation_id=f"order-{data['order_id']}",
                user=operator,
            )
            created += new
        _, new = start_saga(
            workflow="shipment_tracking",
            input={"order_id": "2001"},
            idempotency_key="demo-2001",
            correlation_id="order-2001",
            user=operator,
        )
        created += new
        created += self._expenses(operator)
        created += self._purchases(operator)
        self.stdout.write(
            f"demo ready: {created} new sagas ({Saga.objects.count()} in all); "
            "a running qcluster carries them on"
        )

    def _away(self, User):
        """finance is away for a fortnight (unless set otherwise); director stands in."""
        call_command(
            "setaway",
            "finance",
            "--delegate=director",
            "--days=14",
            "--note=on holiday (demo)",
            "--if-unset",
            stdout=self.stdout,
        )

    def _expenses(self, operator):
        """Expense approvals (quorum:2) waiting for two managers."""
        from sagas.engine import start_saga

        expenses = [
            ("3001", {"employee": "Dana", "amount": 180, "purpose": "a train ticket"}),
            ("3002", {"employee": "Eli", "amount": 640, "purpose": "a conference"}),
        ]
        created = 0
        for expense_id, data in expenses:
            _, new = start_saga(
                workflow="expense_approval",
                input={"expense_id": expense_id, **data},
                idempotency_key=f"demo-{expense_id}",
                correlation_id=f"expense-{expense_id}",
                user=operator,
            )
            created += new
        return created

    def _purchases(self, operator):
        """Purchase requests: one waiting for legal and finance at once, one that failed in
        the finance branch and was undone across both branches, and a vendor onboarded alone."""
        from sagas.engine import start_saga

        lines = [{"sku": "WIDGET", "qty": 2}, {"sku": "WIDGET", "qty": 1}]
        purchases = [
            ("4001", {"amount": 1800, "vendor_id": "acme", "lines": lines}),
            (
                "4002",
                {
                    "amount": 950,
                    "vendor_id": "acme",
                    "lines": lines,
                    "simulate": {"finance_check": "fail"},
                },
            ),
        ]
        created = 0
        for request_id, data in purchases:
            _, new = start_saga(
                workflow="purchase_request",
                input={"request_id": request_id, **data},
                idempotency_key=f"demo-{request_id}",
                correlation_id=f"purchase-{request_id}",
                user=operator,
            )
            created += new
        _, new = start_saga(
            workflow="vendor_onboarding",
            input={"vendor": "globex"},
            idempotency_key="demo-vendor-globex",
            correlation_id="vendor-globex",
            user=operator,
        )
        return created + new
