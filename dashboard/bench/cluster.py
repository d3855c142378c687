"""sagabench's view of a qcluster from outside: CPU time and memory of its processes.

A cluster started by the benchmark leads its own process group (start_new_session),
so its processes are found in /proc by their group; its PostgreSQL backends are
found in pg_stat_activity by their database (the benchmark has one of its own).
"""

import os
import time
from pathlib import Path

from django.db import connection

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name, or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_pids(pgid):
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            stat = _stat(pid)
            if stat and int(stat[2]) == pgid:  # field 5: process group
                pids.append(int(pid))
    return pids


def backend_pids():
    """The PostgreSQL backends of this database but this process's own connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def cpu_seconds(pids):
    """User + system CPU seconds each of `pids` has used so far: {pid: seconds}."""
    used = {}
    for pid in pids:
        stat = _stat(pid)
        if stat:
            used[pid] = (int(stat[11]) + int(stat[12])) / TICKS  # fields 14, 15: utime, stime
    return used


def idle_cpu(pgid, seconds, *, every=0.5):
    """CPU seconds per minute an idle cluster uses: its processes, and its database backends.

    Sampled every `every` seconds, because Django replaces a connection older
    than CONN_MAX_AGE: a backend that starts during the window counts from
    zero (its start is part of the cost), one that ends counts to its last
    sample.
    """
    first, last = {}, {}
    started = time.monotonic()
    sample = 0
    while True:
        for name, pids in (("cluster", group_pids(pgid)), ("backends", backend_pids())):
            for pid, used in cpu_seconds(pids).items():
                key = (name, pid)
                first.setdefault(key, used if sample == 0 else 0.0)
                last[key] = used
        sample += 1
        if time.monotonic() - started >= seconds:
            break
        time.sleep(every)
    elapsed = time.monotonic() - started

    def per_minute(name):
        spent = sum(last[key] - first[key] for key in last if key[0] == name)
        return round(spent * 60 / elapsed, 2)

    return {
        "seconds_measured": round(elapsed, 1),
        "processes": sum(1 for key in last if key[0] == "cluster"),
        "backends": sum(1 for key in last if key[0] == "backends"),
        "cluster_cpu_s_per_min": per_minute("cluster"),
        "backends_cpu_s_per_min": per_minute("backends"),
    }


def rss(pgid):
    """Resident memory of every process in the cluster's process group, in bytes."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in group_pids(pgid):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total
