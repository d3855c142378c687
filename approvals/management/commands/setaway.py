"""manage.py setaway USER [--delegate NAME] [--days N] [--note TEXT] [--clear]: mark a user away.

For admins at a shell, and for seed_demo (sagas.demo may not import approvals:
it calls this command by name). The rules are approvals.away.set_away's.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sagas.engine import SagaError

from ...away import clear_away, set_away
from ...models import Away


class Command(BaseCommand):
    help = "Mark a user away from now (for --days, or open-ended), with a delegate."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--delegate", default="")
        parser.add_argument("--days", type=float, default=None)
        parser.add_argument("--note", default="")
        parser.add_argument("--clear", action="store_true", help="the user is back")
        parser.add_argument(
            "--if-unset", action="store_true", help="leave an existing setting as it is"
        )

    def handle(self, username, delegate, days, note, clear, if_unset, **options):
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"unknown user {username!r}")
        try:
            if clear:
                clear_away(user=user, by=user)
                self.stdout.write(f"{username} is back")
                return
            if if_unset and Away.objects.filter(user=user).exists():
                return
            now = timezone.now()
            set_away(
                user=user,
                by=user,
                starts_at=now,
                ends_at=now + timedelta(days=days) if days else None,
                delegate=delegate or None,
                note=note,
            )
        except SagaError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{username} is away" + (f"; {delegate} stands in" if delegate else ""))
