"""manage.py sagachaos [--large] [--only NAME ...]: the reliability battery's scenarios, with figures.

Runs the scenarios of dashboard/chaos (faults, races, fuzz: the ones
tests/reliability asserts on) on a throwaway database created next to the
configured one (`<name>_sagachaos`, dropped at the end), with real qcluster
subprocesses. Without --large the sizes are those of the CI battery; with
it, the sizes of the README's figures. The database outage scenario starts
its own PostgreSQL 15 server on port 55432 (needs root, for `runuser -u
postgres`); faults are never caused on the configured server.
"""

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

SIZES = {
    # name: (CI size, large size) as keyword arguments of the scenario
    "kills": ({"sagas": 200, "steps": 5, "kills": 20}, {"sagas": 2000, "steps": 5, "kills": 200}),
    "overrun": ({"sagas": 3}, {"sagas": 10}),
    "three_clusters": ({"sagas": 60}, {"sagas": 600}),
    "downtime": ({"sagas": 20}, {"sagas": 200}),
    "outage": ({"sagas": 100, "duration": 20.0}, {"sagas": 300, "duration": 60.0}),
    "approval_races": ({"rounds": 60}, {"rounds": 1000}),
    "concurrent_starts": ({"starts": 200, "threads": 20}, {"starts": 1000, "threads": 40}),
    "retry_races": ({"rounds": 25}, {"rounds": 200}),
    "documents": ({"examples": 1500}, {"examples": 10000}),
}


class Command(BaseCommand):
    help = "Run the reliability scenarios (kills, outages, races, fuzzing) and print their figures."

    def add_arguments(self, parser):
        parser.add_argument("--large", action="store_true", help="the README's sizes")
        parser.add_argument(
            "--only", nargs="+", choices=sorted(SIZES), help="run only these scenarios"
        )
        parser.add_argument("--json", help="also write the figures to this file")

    def handle(self, *args, large=False, only=None, json=None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("sagachaos needs PostgreSQL (DATABASE_URL=postgres://…)")
        # Imported here, not at the top: the battery's actions are registered
        # only when it runs, never by `manage.py help` or a deployment.
        from dashboard.chaos import actions as ledger
        from dashboard.chaos.cluster import QCluster

        log_dir = Path(settings.BASE_DIR) / ".pytest_cache"
        log_dir.mkdir(exist_ok=True)
        names = only or list(SIZES)
        old_name = connection.settings_dict["NAME"]
        # Its own name, so it never collides with the test suite's test_<name>.
        connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{old_name}_sagachaos"
        self.stdout.write(f"creating the throwaway database {old_name}_sagachaos …")
        connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
        results = {}
        try:
            for name in names:
                sizes = SIZES[name][1 if large else 0]
                call_command("flush", interactive=False, verbosity=0)
                ledger.create_ledger()
                clusters = []

                def start(workers=2, extra_env=None, clusters=clusters):
                    env = {"SAGAS_ACTION_MODULES": ledger.ACTION_MODULES, **(extra_env or {})}
                    cluster = QCluster(log_dir=log_dir, workers=workers, extra_env=env)
                    clusters.append(cluster)
                    return cluster

                self.stdout.write(f"\n== {name} {sizes}")
                began = time.monotonic()
                try:
                    figures = self._run(name, start, sizes)
                finally:
                    for cluster in clusters:
                        cluster.stop()
                figures["wall_seconds"] = round(time.monotonic() - began, 1)
                results[name] = figures
                for key, value in figures.items():
                    self.stdout.write(f"  {key:40} {value}")
        finally:
            ledger.drop_ledger()
            connection.creation.destroy_test_db(old_name, verbosity=0)
        if json:
            Path(json).write_text(_dumps(results))
        self.stdout.write(self.style.SUCCESS("\ndone"))

    def _run(self, name, start, sizes):
        from dashboard.chaos import faults, races

        if name == "kills":
            return faults.kills(start, **sizes)
        if name == "overrun":
            return faults.overrun(start, **sizes)
        if name == "three_clusters":
            return faults.three_clusters(start, **sizes)
        if name == "downtime":
            return faults.downtime(start, **sizes)
        if name == "outage":
            from dashboard.chaos.own_postgres import OwnPostgres

            own = OwnPostgres(port=55432)
            try:
                return faults.outage(own, start, **sizes)
            finally:
                own.remove()
        if name == "approval_races":
            return races.approval_races(**sizes)
        if name == "concurrent_starts":
            return races.concurrent_starts(**sizes)
        if name == "retry_races":
            from django.contrib.auth import get_user_model
            from django.contrib.auth.models import Group

            operator = get_user_model().objects.create_user("chaos_operator")
            operator.groups.add(Group.objects.get_or_create(name="operators")[0])
            return races.retry_races(operator=operator, **sizes)
        if name == "documents":
            try:
                from dashboard.chaos import fuzz
            except ImportError as exc:
                raise CommandError(
                    f"the documents scenario needs Hypothesis, a dev dependency (make install): {exc}"
                ) from None
            return fuzz.documents(**sizes)
        raise CommandError(f"unknown scenario {name}")


def _dumps(results):
    return json.dumps(results, indent=2, default=str)
