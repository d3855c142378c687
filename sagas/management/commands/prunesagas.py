"""manage.py prunesagas --finished-before 90d [--dry-run] [--export-events FILE]: retention."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sagas.definitions import parse_duration
from sagas.retention import prune_sagas


class Command(BaseCommand):
    help = (
        "Remove sagas that finished before a cut-off, with their steps and events. "
        "Running sagas are never removed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--finished-before",
            required=True,
            metavar="AGE",
            help="remove sagas that finished longer ago than this: 90d, 12h, 30m",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be removed, remove nothing"
        )
        parser.add_argument(
            "--export-events",
            metavar="FILE",
            help="append each removed saga's events to FILE as JSON lines first",
        )

    def handle(self, *args, finished_before, dry_run, export_events, **options):
        try:
            age = parse_duration(finished_before)
        except ValueError as exc:
            raise CommandError(f"--finished-before: {exc}") from None
        if age <= 0:
            raise CommandError("--finished-before: must be more than zero")
        cutoff = timezone.now() - timedelta(seconds=age)
        if dry_run:
            counts = prune_sagas(finished_before=cutoff, dry_run=True)
            verb = "would remove"
        elif export_events:
            try:
                with open(export_events, "a", encoding="utf-8") as out:
                    counts = prune_sagas(finished_before=cutoff, export_to=out)
            except OSError as exc:
                raise CommandError(
                    f"--export-events: cannot write {export_events}: {exc}"
                ) from None
            verb = "removed"
        else:
            counts = prune_sagas(finished_before=cutoff)
            verb = "removed"
        self.stdout.write(
            f"{verb} {counts['sagas']} sagas finished before {cutoff:%Y-%m-%d %H:%M} UTC "
            f"({counts['steps']} steps, {counts['events']} events)"
            + (f"; events exported to {export_events}" if export_events and not dry_run else "")
        )
        if counts["kept_running"]:
            self.stdout.write(
                f"kept {counts['kept_running']} sagas started before then that are still running"
            )
