"""manage.py sagabench: how fast the engine runs on this machine, in one run.

In a database of its own, with a real qcluster: a deployment's figures.
"""

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from dashboard.bench import cluster as bench_cluster
from dashboard.bench import eager_runs, fan_out, pages_at_scale

ROOT = Path(settings.BASE_DIR)

NOOP4 = {
    "name": "bench_noop4",
    "description": "Four automatic no-op steps.",
    "steps": [{"name": f"step{i}", "type": "action", "action": "demo.noop"} for i in range(4)],
}
WAIT = {
    "name": "bench_wait",
    "steps": [{"name": "wait", "type": "wait", "event": "never.happens", "timeout": "1s"}],
}


def approval_doc(due=None):
    step = {
        "name": "approve",
        "type": "approval",
        "approvers": {"users": ["bench_approver"]},
        "policy": "any",
    }
    if due:
        step.update(due=due, on_timeout="reject")
    return {
        "name": "bench_approval_due" if due else "bench_approval",
        "steps": [step, {"name": "after", "type": "action", "action": "demo.noop"}],
    }


def pct(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


class Command(BaseCommand):
    help = "Benchmark the engine: commit ceiling, throughput, latency, hand-off, deadlines, memory."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="a few seconds, for CI")
        parser.add_argument(
            "--sagas", type=int, help="sagas in the throughput phase (default 3000)"
        )
        parser.add_argument("--workers", type=int, default=2, help="qcluster workers (default 2)")
        parser.add_argument(
            "--memory-sagas",
            type=int,
            help="sagas run before the second RSS reading (default 100000)",
        )
        parser.add_argument(
            "--scale-sagas",
            type=int,
            help="sagas generated for the dashboard phase (default 1000000)",
        )
        parser.add_argument(
            "--bulk-sagas",
            type=int,
            help="sagas cancelled by one bulk operation in the bulk phase (default 10000)",
        )
        parser.add_argument(
            "--only-bulk", action="store_true", help="run only the bulk phase (and its setup)"
        )
        parser.add_argument(
            "--only-pages",
            action="store_true",
            help="run only the dashboard phase (pages over --scale-sagas generated sagas)",
        )
        fan_out.add_arguments(parser)
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
        parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
        parser.add_argument("--inner", action="store_true", help=argparse_hidden())

    def handle(self, *args, **options):
        if options["inner"]:
            return self.run_phases(options)
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            raise CommandError("sagabench measures PostgreSQL: set DATABASE_URL=postgres://…")
        bench_name = f"{db['NAME']}_sagabench"[:63]
        url = _url(db, bench_name)
        self.stdout.write(f"benchmark database: {bench_name} (created now, dropped after)")
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
            cursor.execute(f'CREATE DATABASE "{bench_name}"')
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "Q_LOG_LEVEL": "ERROR",
            # One key for this process and the qclusters it starts: tasks are signed.
            "SECRET_KEY": settings.SECRET_KEY,
        }
        try:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=ROOT,
                env=env,
                check=True,
            )
            argv = [
                sys.executable,
                "manage.py",
                "sagabench",
                "--inner",
                "--workers",
                str(options["workers"]),
            ]
            sizes = ("sagas", "memory_sagas", "scale_sagas", "bulk_sagas", "fan_out_sagas")
            for flag in (*sizes, "json"):
                if options[flag] is not None:
                    argv += [f"--{flag.replace('_', '-')}", str(options[flag])]
            for flag in ("quick", "only_bulk", "only_fan_out", "only_pages"):
                if options[flag]:
                    argv.append(f"--{flag.replace('_', '-')}")
            result = subprocess.run(argv, cwd=ROOT, env=env)
            if result.returncode:
                raise CommandError(f"the benchmark failed (exit {result.returncode})")
        finally:
            if not options["keep"]:
                connection.close()
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')

    # --- inside the benchmark database -------------------------------------

    def run_phases(self, options):
        quick = options["quick"]
        self.workers = options["workers"]
        figures = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "postgresql": _pg_version(connection.cursor().connection.info.server_version),
            },
            "when": timezone.now().isoformat(timespec="seconds"),
            "quick": quick,
        }
        self.setup()
        bulk_n = options["bulk_sagas"] or (200 if quick else 10_000)
        if options["only_bulk"]:
            figures["bulk"] = self.phase_bulk(bulk_n)
            self.stdout.write(self.bulk_line(figures["bulk"]))
            return self.write_json(figures, options["json"])
        scale_n = options["scale_sagas"] or (2000 if quick else 1_000_000)
        if options["only_pages"]:
            figures["dashboard"] = self.phase_dashboard(scale_n)
            self.stdout.write("\n".join(pages_at_scale.lines(figures["dashboard"])))
            return self.write_json(figures, options["json"])
        figures["ceiling"] = self.phase_ceiling(seconds=1 if quick else 5)
        n = options["sagas"] or (100 if quick else 3000)
        figures["throughput"] = self.phase_throughput(n, figures["ceiling"])
        figures["fan_out"] = fan_out.phase(self, quick, figures["throughput"], options)
        if options["only_fan_out"]:
            return fan_out.report_only(self.stdout, figures, options["json"])
        cluster = self.start_cluster()
        try:
            figures["cold_start"] = self.phase_cold_start(cluster)
            # Starts and decides here as a deployed web worker would: DEBUG off.
            with override_settings(DEBUG=False):
                figures["latency"] = self.phase_latency(10 if quick else 200)
                figures["approval_handoff"] = self.phase_handoff(5 if quick else 100)
            figures["eager"] = eager_runs.phase(self, quick)
            figures["deadlines"] = self.phase_deadlines(10 if quick else 100)
            figures["idle"] = self.phase_idle(cluster, 3 if quick else 20)
            memory_n = options["memory_sagas"] or (200 if quick else 100_000)
            figures["memory"] = self.phase_memory(cluster, memory_n)
        finally:
            self.stop_cluster(cluster)
        figures["bulk"] = self.phase_bulk(bulk_n)
        figures["dashboard"] = self.phase_dashboard(scale_n)
        self.report(figures)
        self.write_json(figures, options["json"])

    def write_json(self, figures, path):
        """--json FILE: the figures of the phases that ran."""
        if path:
            Path(path).write_text(json.dumps(figures, indent=2, default=str))
            self.stdout.write(f"figures written to {path}")

    def setup(self):
        from django.contrib.auth import get_user_model

        from sagas.authoring import publish_workflow

        User = get_user_model()
        User.objects.get_or_create(username="bench_initiator")
        User.objects.get_or_create(username="bench_approver")
        for document in (NOOP4, WAIT):
            publish_workflow(document)
        self.has_approvals = "approval" in __import__("sagas.kinds", fromlist=["names"]).names()
        if self.has_approvals:
            publish_workflow(approval_doc())
            publish_workflow(approval_doc(due="1s"))

    def progress(self, message):
        self.stdout.write(f"  … {message}")
        self.stdout.flush()

    # 1. what this PostgreSQL can commit at all
    def phase_ceiling(self, seconds):
        import psycopg

        db = settings.DATABASES["default"]
        conninfo = dict(
            dbname=db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"] or None,
            port=db["PORT"] or None,
        )
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, v int)"
            )

        def loop(counter, stop):
            with psycopg.connect(**conninfo) as conn:
                while not stop.is_set():
                    with conn.transaction():
                        row = conn.execute(
                            "INSERT INTO bench_ceiling (v) VALUES (0) RETURNING id"
                        ).fetchone()
                        conn.execute("UPDATE bench_ceiling SET v = v + 1 WHERE id = %s", row)
                    counter[0] += 1

        result = {}
        for connections in (1, 2):
            counters = [[0] for _ in range(connections)]
            stop = threading.Event()
            threads = [threading.Thread(target=loop, args=(c, stop)) for c in counters]
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            result[f"commits_per_s_{connections}_conn"] = round(
                sum(c[0] for c in counters) / seconds
            )
        self.progress(f"commit ceiling: {result}")
        return result

    # 2. many sagas through a real cluster
    def phase_throughput(self, n, ceiling):
        from django.db.models import Max, Min

        from sagas.engine import start_saga
        from sagas.models import Saga, SagaStep

        t0 = time.perf_counter()
        ids = []
        for i in range(n):
            ids.append(start_saga(workflow="bench_noop4", input={"i": i})[0].pk)
            if (i + 1) % 1000 == 0:
                self.progress(f"started {i + 1}/{n} sagas")
        start_rate = n / (time.perf_counter() - t0)
        cluster = self.start_cluster()
        try:
            last = -1
            while True:
                done = Saga.objects.filter(pk__in=ids, state="completed").count()
                if done == n:
                    break
                if done != last:
                    self.progress(f"{done}/{n} sagas completed")
                    last = done
                time.sleep(1)
        finally:
            self.stop_cluster(cluster)
        steps = SagaStep.objects.filter(saga_id__in=ids)
        span = steps.aggregate(first=Min("started_at"), last=Max("executed_at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        ran_once = steps.filter(attempt=1, status="completed").count()
        if ran_once != 4 * n:
            raise CommandError(f"only {ran_once} of {4 * n} steps completed on their first attempt")
        steps_per_s = 4 * n / seconds
        return {
            "sagas": n,
            "workers": self.workers,
            "seconds": round(seconds, 2),
            "steps_per_s": round(steps_per_s),
            "sagas_per_s": round(n / seconds),
            "ratio_to_2conn_ceiling": round(steps_per_s / ceiling["commits_per_s_2_conn"], 3),
            "starts_per_s_one_process": round(start_rate),
            "every_step_ran_once": True,
        }

    # 3a. a saga started with the cluster, and the first one once it is ready
    def phase_cold_start(self, cluster):
        from sagas.engine import start_saga

        saga = start_saga(workflow="bench_noop4", input={"cold": 0})[0]
        with_start = (self.wait_finished(saga.pk) - saga.created_at).total_seconds()
        self.wait_for_sweeper(since=cluster.launched_at)
        ready = (timezone.now() - cluster.launched_at).total_seconds()
        saga = start_saga(workflow="bench_noop4", input={"cold": 1})[0]
        first = (self.wait_finished(saga.pk) - saga.created_at).total_seconds()
        return {
            "started_with_cluster_ms": ms(with_start),
            "cluster_ready_ms": ms(ready),
            "first_on_ready_cluster_ms": ms(first),
        }

    # 3b. one saga at a time on an idle cluster
    def phase_latency(self, n, key="latency"):
        from sagas.engine import start_saga
        from sagas.models import Saga

        seconds = []
        for i in range(n):
            saga = start_saga(workflow="bench_noop4", input={key: i})[0]
            finished = self.wait_finished(saga.pk)
            seconds.append((finished - saga.created_at).total_seconds())
            time.sleep(0.02)
        assert (
            Saga.objects.filter(
                workflow="bench_noop4", input__has_key=key, state="completed"
            ).count()
            == n
        )
        return self.summary(seconds)

    def wait_finished(self, saga_id, timeout=30):
        from sagas.models import Saga

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = Saga.objects.filter(pk=saga_id).values_list("finished_at", flat=True).first()
            if finished:
                return finished
            time.sleep(0.002)
        raise CommandError(f"saga {saga_id} did not finish within {timeout}s")

    # 4. decision → next automatic step completed
    def phase_handoff(self, n):
        if not self.has_approvals:
            return {"skipped": "no approval step kind installed"}
        from django.contrib.auth import get_user_model

        from approvals.models import ApprovalRequest
        from approvals.services import decide
        from sagas.engine import start_saga

        User = get_user_model()
        initiator = User.objects.get(username="bench_initiator")
        approver = User.objects.get(username="bench_approver")
        seconds = []
        for i in range(n):
            saga = start_saga(workflow="bench_approval", input={"i": i}, user=initiator)[0]
            request = ApprovalRequest.objects.get(saga=saga)
            decided_at = timezone.now()
            decide(request=request, user=approver, decision="approve")
            finished = self.wait_finished(saga.pk)
            seconds.append((finished - decided_at).total_seconds())
        return self.summary(seconds)

    # 5. how late deadlines fire
    def phase_deadlines(self, n):
        from sagas.engine import start_saga
        from sagas.models import Saga, SagaEvent

        ids = []
        for i in range(n):
            ids.append(start_saga(workflow="bench_wait", input={}, correlation_id=f"d{i}")[0].pk)
            time.sleep(0.011)  # spread the deadlines over the sweeper's ticks
        if self.has_approvals:
            from django.contrib.auth import get_user_model

            initiator = get_user_model().objects.get(username="bench_initiator")
            for i in range(max(1, n // 4)):
                ids.append(
                    start_saga(workflow="bench_approval_due", input={"i": i}, user=initiator)[0].pk
                )
                time.sleep(0.013)
        deadline = time.monotonic() + 60
        while Saga.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
            if time.monotonic() > deadline:
                raise CommandError("deadlines did not all fire within a minute")
            time.sleep(0.1)
        late = list(
            SagaEvent.objects.filter(saga_id__in=ids, kind="deadline_passed").values_list(
                "details__late_seconds", flat=True
            )
        )
        if len(late) != len(ids):
            raise CommandError(f"{len(ids)} deadlines, {len(late)} fired")
        return {**self.summary(late), "fired_once_each": True}

    # 5b. what an idle cluster costs (its processes, and its database backends)
    def phase_idle(self, cluster, seconds):
        time.sleep(1)  # the deadlines phase's last runs end
        idle = bench_cluster.idle_cpu(cluster.pid, seconds)
        self.progress(f"idle cluster: {idle}")
        return idle

    # 7. worker memory
    def phase_memory(self, cluster, n):
        from sagas.engine import start_saga
        from sagas.models import Saga

        self.run_batch(start_saga, 200)  # warm up imports and caches
        before = bench_cluster.rss(cluster.pid)
        batch = 1000
        done = 0
        while done < n:
            size = min(batch, n - done)
            self.run_batch(start_saga, size)
            done += size
            if done % 10_000 == 0 or done == n:
                self.progress(f"memory phase: {done}/{n} sagas")
        after = bench_cluster.rss(cluster.pid)
        assert not Saga.objects.exclude(state="completed").filter(workflow="bench_noop4").exists()
        return {
            "sagas": n,
            "rss_start_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "growth_pct": round(100 * (after - before) / before, 1),
        }

    def run_batch(self, start_saga, size):
        from sagas.models import Saga

        ids = [start_saga(workflow="bench_noop4", input={})[0].pk for _ in range(size)]
        while Saga.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
            time.sleep(0.2)

    # 6. the dashboard at a million sagas
    def phase_bulk(self, n):
        """A bulk cancel of n waiting sagas, on a fresh qcluster (dashboard/bench/bulk_cancel.py)."""
        from dashboard.bench import bulk_cancel

        cluster = self.start_cluster()
        try:
            self.wait_for_sweeper(since=cluster.launched_at)
            return bulk_cancel.run(n, self.progress)
        finally:
            self.stop_cluster(cluster)

    def bulk_line(self, b):
        return (
            f"| bulk cancel of {b['sagas']:,} sagas | outcomes recorded in {b['recorded_seconds']} s "
            f"({b['sagas_per_s']}/s), all compensated in {b['compensated_seconds']} s; "
            f"{b['done']:,} done, {b['refused']} refused, {b['queued_left']} left, "
            f"{b['sagas_cancelled_once']:,} sagas cancelled once ({b['cancel_events']:,} events) | "
            "each saga once, none lost |"
        )

    def phase_dashboard(self, n):
        approvals = min(100_000, n // 10)
        return pages_at_scale.measure(n, approvals if self.has_approvals else 0, self.progress)

    # --- helpers -------------------------------------------------------------

    def summary(self, seconds):
        return {
            "n": len(seconds),
            "p50_ms": ms(statistics.median(seconds)),
            "p95_ms": ms(pct(seconds, 95)),
            "max_ms": ms(max(seconds)),
        }

    def start_cluster(self):
        # Workers as deployed: DEBUG off (Django would keep every query it ran).
        env = {
            **os.environ,
            "Q_WORKERS": str(self.workers),
            "DEBUG": "0",
        }
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        cluster.launched_at = timezone.now()
        return cluster

    def stop_cluster(self, cluster):
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGTERM)
            try:
                cluster.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(cluster.pid, signal.SIGKILL)
                cluster.wait()

    def wait_for_sweeper(self, *, since):
        """Until this cluster has swept: a heartbeat older than its launch is a previous cluster's."""
        from sagas.models import SweeperHeartbeat

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            last = SweeperHeartbeat.objects.values_list("last_swept_at", flat=True).first()
            if last is not None and last > since:
                return
            time.sleep(0.01)
        raise CommandError("the qcluster did not start its sweeper within 30 s")

    def report(self, f):
        c, t = f["ceiling"], f["throughput"]
        lines = [
            "",
            f"Sagaflow benchmark — {f['machine']['cpus']} CPUs, Python {f['machine']['python']}, "
            f"PostgreSQL {f['machine']['postgresql']}, {t['workers']} workers{' (quick)' if f['quick'] else ''}",
            "",
            "| figure | value | target |",
            "| --- | --- | --- |",
            f"| commit ceiling, 1 / 2 connections | {c['commits_per_s_1_conn']} / {c['commits_per_s_2_conn']} commits/s | — |",
            f"| throughput ({t['sagas']} sagas × 4 steps) | {t['steps_per_s']} steps/s, {t['sagas_per_s']} sagas/s | ≥ 1,000 steps/s |",
            f"| throughput ÷ 2-connection ceiling | {t['ratio_to_2conn_ceiling']:.0%} | ≥ 50 % |",
        ]
        cold = f["cold_start"]
        lines.append(
            f"| first saga: started with the cluster / on the ready cluster | "
            f"{cold['started_with_cluster_ms']} / {cold['first_on_ready_cluster_ms']} ms "
            f"(ready after {cold['cluster_ready_ms']} ms) | no cold first saga |"
        )
        for key, label in (
            ("latency", "start → completed"),
            ("approval_handoff", "decision → next step done"),
            ("deadlines", "deadline lateness"),
        ):
            v = f[key]
            if "skipped" in v:
                lines.append(f"| {label} | skipped: {v['skipped']} | |")
                continue
            target = {
                "latency": "p50 ≤ 10 ms, p95 ≤ 20 ms",
                "approval_handoff": "p50 ≤ 8 ms, p95 ≤ 16 ms",
                "deadlines": "p95 ≤ 1,000 ms",
            }[key]
            lines.append(
                f"| {label} (n={v['n']}) | p50 {v['p50_ms']} ms, p95 {v['p95_ms']} ms, max {v['max_ms']} ms | {target} |"
            )
        lines += eager_runs.lines(f)
        idle = f["idle"]
        lines.append(
            f"| idle cluster, CPU-seconds per minute: its processes / its backends | "
            f"{idle['cluster_cpu_s_per_min']} / {idle['backends_cpu_s_per_min']} s | no more than before |"
        )
        m = f["memory"]
        lines.append(
            f"| qcluster RSS, start → after {m['sagas']} sagas | {m['rss_start_mb']} → {m['rss_after_mb']} MB "
            f"({m['growth_pct']:+}%) | ≤ +10 % |"
        )
        lines += pages_at_scale.lines(f["dashboard"])
        lines += [self.bulk_line(f["bulk"]), fan_out.line(f["fan_out"])]
        self.stdout.write("\n".join(lines))


def _pg_version(number):
    return f"{number // 10000}.{number % 10000}"


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def _url(db, name):
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{name}"
