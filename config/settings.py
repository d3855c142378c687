"""Settings for the saga engine and its dashboard, read from the environment."""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    return os.environ.get(name, default)


def envbool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def envfloat(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def envlist(name, default=()):
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url):
    """A DATABASES entry from postgres://user:pass@host:port/name?option=value."""
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgres:// (got {parsed.scheme or 'nothing'}://)"
        )
    options = dict(parse_qsl(parsed.query, keep_blank_values=True))
    # The engine's own statements (sagas/engine/store.py, sagas/q2/broker.py) are prepared
    # once per connection; Django's cursors bind on the client and are never
    # prepared. Behind a transaction-pooling PgBouncer older than 1.21, turn it
    # off with ?prepare_threshold= (empty).
    threshold = options.pop("prepare_threshold", "5").strip()
    if threshold and not threshold.isdigit():
        raise ImproperlyConfigured(
            f"DATABASE_URL: prepare_threshold must be a whole number or empty (got {threshold!r})"
        )
    options["prepare_threshold"] = int(threshold) if threshold else None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        # Persistent connections, checked before reuse; no pool: each web thread and
        # each worker process holds one (README, "Deployment", counts them).
        "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


# DJANGO_ENV=production turns on the settings of a real deployment (the block
# at the end of this file); these variables have no safe default there.
DJANGO_ENV = env("DJANGO_ENV", "development").strip().lower()
PRODUCTION = DJANGO_ENV == "production"
PRODUCTION_REQUIRED = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL")
if PRODUCTION:
    _missing = [name for name in PRODUCTION_REQUIRED if not env(name, "").strip()]
    if _missing:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs these environment variables: " + ", ".join(_missing)
        )
    if envbool("DEBUG", False):
        raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production.")

DEBUG = envbool("DEBUG", not PRODUCTION)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "sagas",
    "sagas.authoring",
    "sagas.demo",
    "sagas.hooks",
    "sagas.secrets",
    "approvals",
    "dashboard",
]

MIDDLEWARE = [
    # First, so that every request sets its own log context (sagas/logcontext.py):
    # an incoming X-Correlation-ID, or none.
    "sagas.logcontext.CorrelationIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Pages in the person's time zone (their profile), the API in the server's.
    "dashboard.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Logs 401/403/429 answers with who asked for what (failed authorizations).
    "config.security.DeniedRequestLogMiddleware",
    # Last, as its docs ask: turns a locked-out sign-in into a 429 page.
    "axes.middleware.AxesMiddleware",
]

# Sign-in attempts are limited (django-axes): after AXES_FAILURE_LIMIT failures
# for one username from one address, that pair is locked out for
# AXES_COOLOFF_TIME hours (429); a success resets the count.
AUTHENTICATION_BACKENDS = [
    "config.security.LoginAttemptsBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envfloat("AXES_COOLOFF_TIME", 0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if env("DATABASE_URL"):
    DATABASES = {"default": database_from_url(env("DATABASE_URL"))}
else:
    # The embedded default: one SQLite file, WAL so readers never block the
    # writer, IMMEDIATE transactions and a busy timeout so the web process and
    # the qcluster wait for each other instead of failing with "locked".
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One way of writing moments for the dashboard and the admin: 2026-11-30 14:03:05.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# The dashboard's Content Security Policy: scripts and styles only from this
# site (htmx is served as a static file, no inline script, no eval), so an
# injected <script> or inline handler never runs.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# How often live dashboard fragments poll (seconds); polling pauses in hidden tabs.
DASHBOARD_POLL_SECONDS = envint("DASHBOARD_POLL_SECONDS", 5)
# Rows per page of the saga list (keyset pagination).
DASHBOARD_PAGE_SIZE = envint("DASHBOARD_PAGE_SIZE", 50)
# Approvals shown at once in the inbox (soonest due first).
DASHBOARD_INBOX_SIZE = envint("DASHBOARD_INBOX_SIZE", 25)
# An approver's claim on a group request lapses after this many hours (approvals/claims.py).
APPROVALS_CLAIM_HOURS = envfloat("APPROVALS_CLAIM_HOURS", 8)
# The approvals aging report (page, CSV, API) is computed at most this often per
# process: at 100,000 pending requests and as many decisions it reads them all
# (approvals/aging.py). 0 computes it on every request.
APPROVALS_AGING_CACHE_SECONDS = envint("APPROVALS_AGING_CACHE_SECONDS", 30)

MAILERS = {
    "default": {
        "BACKEND": env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"),
    }
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "sagas@localhost")
# Links in e-mails point here (scheme and host, no trailing slash).
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

# The REST API (sagas/api): token auth for services (`Authorization: Token <key>`,
# `manage.py drf_create_token USER`), session auth with CSRF for the browser.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["sagas.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "sagas.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sagaflow API",
    "DESCRIPTION": (
        "Start and watch sagas, decide approvals, deliver events. Errors are JSON: "
        '{"error": code, "detail": sentence, "fields": {path: [messages]}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sagas.api.schema.allow_empty_query_values",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SagaStateEnum": "sagas.states.SagaState",
        "StepStatusEnum": "sagas.states.StepStatus",
        "WorkflowStatusEnum": "sagas.models.WorkflowDefinition.Status",
        "HealthStatusEnum": ["ok", "unhealthy"],
    },
}
# Outbound webhooks (sagas/hooks): attempts per delivery, backoff (seconds), timeout.
SAGAS_WEBHOOK_MAX_ATTEMPTS = envint("SAGAS_WEBHOOK_MAX_ATTEMPTS", 8)
SAGAS_WEBHOOK_BACKOFF = envfloat("SAGAS_WEBHOOK_BACKOFF", 5.0)
SAGAS_WEBHOOK_MAX_BACKOFF = envfloat("SAGAS_WEBHOOK_MAX_BACKOFF", 3600.0)
SAGAS_WEBHOOK_TIMEOUT = envfloat("SAGAS_WEBHOOK_TIMEOUT", 10.0)
# A worker that found no active subscription does not look again for this long.
SAGAS_WEBHOOK_NONE_CACHE = envfloat("SAGAS_WEBHOOK_NONE_CACHE", 2.0)

# --- The saga engine -------------------------------------------------------

# Hosts that `http` steps may call (exact names, or ".example.com" for a domain).
SAGAS_HTTP_ALLOWED_HOSTS = envlist("SAGAS_HTTP_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
# Addresses no outgoing call (http steps, webhooks) may reach, whatever name
# resolves to them: link-local (cloud metadata at 169.254.169.254), the
# unspecified and multicast addresses. Loopback stays usable: the allowlist
# decides which local names are allowed.
SAGAS_HTTP_FORBIDDEN_NETWORKS = envlist(
    "SAGAS_HTTP_FORBIDDEN_NETWORKS",
    ["169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "::/128", "fe80::/10", "ff00::/8"],
)
# Every document and JSON value the product parses (workflow documents from the
# admin, the API, import and loadworkflows; saga inputs; event payloads) is at
# most this large and this deeply nested (sagas/documents.py); YAML anchors
# and aliases are refused. A file of several documents may be 4× the size.
SAGAS_DOCUMENT_MAX_BYTES = envint("SAGAS_DOCUMENT_MAX_BYTES", 256 * 1024)
SAGAS_DOCUMENT_MAX_DEPTH = envint("SAGAS_DOCUMENT_MAX_DEPTH", 32)
# Modules that register actions (`@action`) or step kinds, imported at start-up
# in web and worker processes alike.
SAGAS_ACTION_MODULES = envlist("SAGAS_ACTION_MODULES", [])
# How long a running step may hold its claim when its definition sets no timeout.
# A parallel step's for_each over more elements than this fails the step (sagas/engine/branches.py).
SAGAS_MAX_BRANCHES = envint("SAGAS_MAX_BRANCHES", 1000)
# Without max_concurrency, start at most this many branches of a parallel step at a
# time (0: all at once); the next starts inline when one finishes (sagas/engine/branches.py).
SAGAS_BRANCH_WINDOW = envint("SAGAS_BRANCH_WINDOW", 0)
# How deep child sagas (`saga` steps) may nest, the top saga counting as 1.
SAGAS_MAX_SAGA_DEPTH = envint("SAGAS_MAX_SAGA_DEPTH", 5)
SAGAS_DEFAULT_STEP_TIMEOUT = envfloat("SAGAS_DEFAULT_STEP_TIMEOUT", 60.0)
# Bulk actions on a whole filter (sagas/bulk/): at most this many sagas per
# operation, shared by RUNNERS tasks; each works for about SLICE seconds,
# BATCH sagas at a time, and an operation silent for STALE seconds (its
# worker died) is taken over by the sweeper.
SAGAS_BULK_MAX = envint("SAGAS_BULK_MAX", 100_000)
SAGAS_BULK_BATCH = envint("SAGAS_BULK_BATCH", 100)
SAGAS_BULK_RUNNERS = envint("SAGAS_BULK_RUNNERS", 2)
SAGAS_BULK_SLICE = envfloat("SAGAS_BULK_SLICE", 20.0)
SAGAS_BULK_STALE = envfloat("SAGAS_BULK_STALE", 60.0)
# How often the sweeper looks for due deadlines; lateness is about this plus `poll`.
SAGAS_SWEEP_INTERVAL = envfloat("SAGAS_SWEEP_INTERVAL", 0.25)
# A queued step whose task never claimed it (a worker died after dequeuing) is
# queued again after this long.
SAGAS_REQUEUE_AFTER = envfloat("SAGAS_REQUEUE_AFTER", 30.0)
# After its own run, a worker keeps taking queued engine runs straight from the
# broker table for up to this long before it returns to django-q2 (0: never).
SAGAS_TAKE_QUEUED_SECONDS = envfloat("SAGAS_TAKE_QUEUED_SECONDS", 5.0)
# Eager runs (sagas/engine/eager.py): start_saga and an approval decision run the
# next automatic steps in the calling thread for up to this long after their
# commit, instead of handing them to a worker; the step after that is queued.
# 0 (the default): off, every step runs on a worker.
SAGAS_EAGER_SECONDS = envfloat("SAGAS_EAGER_SECONDS", 0.0)
# A worker taking queued runs takes up to this many at a time, runs their steps
# one after the other and commits their transitions together (1: one saga per commit).
SAGAS_GROUP_COMMIT = envint("SAGAS_GROUP_COMMIT", 8)
# Whether a worker's own transitions (its claims and recorded outcomes) wait for
# PostgreSQL's WAL flush at commit. Off: a database crash may lose their last
# few hundred milliseconds, whose steps then run again under the same
# idempotency key (README "Configuration", "Performance").
SAGAS_WORKER_SYNCHRONOUS_COMMIT = envbool("SAGAS_WORKER_SYNCHRONOUS_COMMIT", True)
# An event that matched no waiting step is kept this long (seconds) for a `wait`
# step that starts later (DESIGN invariant 11); pruned after by prunesagas.
SAGAS_EVENT_RETENTION = envfloat("SAGAS_EVENT_RETENTION", 24 * 3600.0)

# django-q2: ORM broker on the same database, so an enqueue commits or rolls
# back with the state change that made it (README, "How it works": one
# transaction per transition).
Q_CLUSTER = {
    "name": "sagas",
    # The broker is a table in the default database: no extra server to run.
    "orm": "default",
    # django-q2's ORM broker, plus delayed tasks and workers that take queued
    # engine runs themselves (sagas/q2/broker.py).
    "broker_class": "sagas.q2.broker.SagaBroker",
    "workers": envint("Q_WORKERS", 2),
    # A task is one run of consecutive automatic steps; each step has its own
    # lease, so this only guards against a task that hangs outright.
    "timeout": envint("Q_TIMEOUT", 600),
    # django-q2's redelivery lease: well above `timeout`, so a task that is
    # still running is never handed to a second worker by the broker.
    "retry": envint("Q_RETRY", 900),
    # A failed task is acknowledged, not redelivered: the engine records the
    # failure on the step and does its own retries with backoff.
    "ack_failures": True,
    "max_attempts": 1,
    # Missed schedules are not replayed in a burst after downtime; the only
    # schedule keeps the sweeper alive and one run of it is enough.
    "catch_up": False,
    # How long an idle pusher waits before asking the broker again. On
    # PostgreSQL work queued wakes it at once (LISTEN/NOTIFY) and a delayed
    # row wakes it when due (sagas/q2/broker.py, dequeue): the poll only
    # bounds what a lost notification costs. SQLite has only the poll: it is
    # the pick-up latency there.
    "poll": envfloat("Q_POLL", 0.05 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 0.5),
    # Engine tasks are not saved (the step rows hold the outcome); failures of
    # other tasks keep a short history.
    "save_limit": 250,
    "label": "Task queue",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # JSON lines in production, one readable line in development (LOG_FORMAT
    # chooses); either way each line of engine work carries its saga id, step,
    # attempt and correlation id (sagas/logcontext.py).
    "filters": {"saga_context": {"()": "sagas.logcontext.SagaContextFilter"}},
    "formatters": {
        "plain": {"()": "sagas.logcontext.ReadableFormatter"},
        "json": {"()": "sagas.logcontext.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env("LOG_FORMAT", "json" if PRODUCTION else "plain"),
            "filters": ["saga_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django-q": {"level": env("Q_LOG_LEVEL", "WARNING")},
        # django-axes says INFO on every sign-in; lockouts come at WARNING.
        "axes": {"level": env("AXES_LOG_LEVEL", "WARNING")},
        # httpx says every request's whole URL at INFO, and a URL may carry a
        # secret in its query: outgoing calls are logged by the engine instead.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Running it in production (DJANGO_ENV=production) -----------------------

# /metrics (sagas/metrics.py) answers a request that carries this token
# (`Authorization: Bearer <token>`) or that comes from one of these networks
# (the direct peer's address, so behind a proxy use the token). With neither
# set, it answers nobody.
METRICS_TOKEN = env("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = envlist(
    "METRICS_ALLOWED_NETWORKS", [] if PRODUCTION else ["127.0.0.1/32", "::1/128"]
)
# How long a qcluster worker that got SIGTERM lets the step in hand finish
# before it releases the step's lease (the step is retried elsewhere) and
# exits; keep it below your supervisor's stop timeout (sagas/q2/shutdown.py).
SAGAS_SHUTDOWN_GRACE = envfloat("SAGAS_SHUTDOWN_GRACE", 20.0)
# django-q2's own task results (Success, Failure) older than this are deleted
# by a daily schedule (sagas/retention.py).
SAGAS_TASK_RESULT_RETENTION_DAYS = envint("SAGAS_TASK_RESULT_RETENTION_DAYS", 7)

if PRODUCTION:
    # TLS ends at the proxy in front of gunicorn, which says so in this header;
    # the proxy must set it and strip it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    # Prometheus scrapes the app servers directly on the private network.
    SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
    # Hashed, pre-compressed files from `collectstatic`, served by whitenoise
    # with far-future cache headers.
    STATIC_ROOT = Path(env("STATIC_ROOT", str(STATIC_ROOT)))
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    # Approval e-mails go out over SMTP unless EMAIL_BACKEND names another backend.
    if not env("EMAIL_BACKEND"):
        MAILERS["default"] = {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": env("EMAIL_HOST", "localhost"),
                "port": envint("EMAIL_PORT", 587 if envbool("EMAIL_USE_TLS", True) else 25),
                "username": env("EMAIL_HOST_USER") or None,
                "password": env("EMAIL_HOST_PASSWORD") or None,
                "use_tls": envbool("EMAIL_USE_TLS", True),
                "timeout": envint("EMAIL_TIMEOUT", 10),
            },
        }
    # gunicorn's own lines (errors, access log) in the same JSON stream.
    LOGGING["loggers"].update(
        {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        }
    )
