"""gunicorn settings for the web process: `gunicorn -c config/gunicorn.py config.wsgi`.

Everything comes from the environment so that one file serves every machine.
"""

import multiprocessing
import os


def _int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


# Where to listen: PORT (set by Procfile platforms) or GUNICORN_BIND.
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
# Processes, each with a few threads: the dashboard's polling requests are
# short and spend their time waiting on PostgreSQL.
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread"
# A request that takes longer than this is cut off and its worker replaced.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM, requests in progress get this long to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = 5
# Replace each worker after this many requests (a slow leak never grows).
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
# Trust X-Forwarded-* only from the proxy in front (comma-separated addresses).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Access and error lines to stdout/stderr; in production Django's LOGGING
# turns them into the same JSON lines as the application's.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# Worker heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Each worker loads the app itself: no database connection is shared across fork.
preload_app = False
# gunicorn 27's control socket defaults to one path per user, which two
# instances on a machine would share; on only when a path is given.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
