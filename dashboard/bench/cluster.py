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


def idle_cpu(pgid, seconds):
    """CPU seconds per minute an idle cluster uses: its processes, and its database backends."""
    cluster, backends = group_pids(pgid), backend_pids()
    before = cpu_seconds(cluster), cpu_seconds(backends)
    time.sleep(seconds)
    after = cpu_seconds(cluster), cpu_seconds(backends)

    def per_minute(b, a):
        # Only processes alive at both readings: one that came or went is not idle cost.
        return round(sum(a[pid] - b[pid] for pid in a.keys() & b.keys()) * 60 / seconds, 2)

    return {
        "seconds_measured": seconds,
        "processes": len(cluster),
        "backends": len(backends),
        "cluster_cpu_s_per_min": per_minute(before[0], after[0]),
        "backends_cpu_s_per_min": per_minute(before[1], after[1]),
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
