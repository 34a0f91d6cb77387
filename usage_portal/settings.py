"""Settings, read from environment variables (see README.md for each one)."""

import ipaddress
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from usage_portal.hosts import AllowedHosts

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def local_secret_key() -> str:
    """A per-checkout random key, so a checkout never runs with a key from the source tree."""
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or local_secret_key()
# Brands' domains are answered too (usage_portal.hosts); these are the operator's own.
ALLOWED_HOSTS = AllowedHosts(
    h.strip()
    for h in (os.environ.get("DJANGO_ALLOWED_HOSTS") or "localhost,127.0.0.1").split(",")
    if h.strip()
)
# HTTPS-only cookies, redirects and HSTS follow DEBUG unless set: a local demo over
# plain HTTP (make run) turns them off explicitly.
HTTPS = env_bool("DJANGO_HTTPS", default=not DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_api_key",
    "django_filters",
    "django_tables2",
    "mptt",
    "django_q",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "usage_portal",
    "accounts",
    "metering",
    "billing",
    "reports",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "usage_portal.middleware.RequestTextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "usage_portal.middleware.ViewerTimeZoneMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "usage_portal.urls"

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
                "accounts.context_processors.user_tenants",
                "accounts.context_processors.brand",
            ],
        },
    },
]

WSGI_APPLICATION = "usage_portal.wsgi.application"
ASGI_APPLICATION = "usage_portal.asgi.application"


def database_from_env() -> dict:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE transactions + a busy timeout let the web server and the task
        # cluster write to one file without failing at once with "database is locked".
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file (subprocess tests open it too) beside the database it stands in for.
        database = Path(config["NAME"])
        config["TEST"] = {"NAME": str(database.with_name(f"test_{database.name}"))}
    return config


DATABASES = {"default": database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Tests and a fresh checkout render pages before collectstatic has run.
WHITENOISE_MANIFEST_STRICT = False

# The largest request body (the events API's 10,000-event batches fit well inside).
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reports:home"
LOGOUT_REDIRECT_URL = "login"

# Throttle counters and sign-in failures must be shared by every web process:
# Redis when configured, else files beside the SQLite database (one machine).
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.get("USAGE_CACHE_DIR") or str(BASE_DIR / ".cache"),
        }
    }

# Sign-in guard: this many failures per username and address lock it for the window.
LOGIN_FAILURE_LIMIT = env_int("USAGE_LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("USAGE_LOGIN_FAILURE_WINDOW_SECONDS", 900)


def trusted_proxies(value: str) -> list[str]:
    """Addresses and networks (CIDR) of the reverse proxies in front of the app.
    Only from these is X-Forwarded-For believed; a bad entry stops the start."""
    networks = [item.strip() for item in value.split(",") if item.strip()]
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"USAGE_TRUSTED_PROXIES: {network!r} is invalid") from None
    return networks


# The client address (sign-in guard, throttling) is REMOTE_ADDR unless that is one of
# these proxies; see utilities.client_address.
USAGE_TRUSTED_PROXIES = trusted_proxies(os.environ.get("USAGE_TRUSTED_PROXIES", ""))

# Everything the pages load is our own: no inline scripts, no third-party origins.
# Inline style attributes stay allowed (the admin and Swagger UI use them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.permissions.ApiKeyScope",
    ],
    "DEFAULT_PAGINATION_CLASS": "utilities.api.pagination.PagePagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "utilities.api.throttling.IngestThrottle",
        "utilities.api.throttling.ReadThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "ingest": os.environ.get("USAGE_THROTTLE_INGEST", "1200/min"),
        "read": os.environ.get("USAGE_THROTTLE_READ", "1200/min"),
    },
    "EXCEPTION_HANDLER": "utilities.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "utilities.api.parsers.StrictJSONParser",
        "utilities.api.parsers.StrictFormParser",
        "utilities.api.parsers.StrictMultiPartParser",
    ],
    # Non-ASCII text goes out as \u escapes, so a lone surrogate in stored JSON
    # (SQLite keeps the escape as text) still renders as valid JSON, not a 500.
    "UNICODE_JSON": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Usage Portal API",
    "DESCRIPTION": (
        "Meter usage and bill by it across a partner / reseller / organization / agent "
        "tenant tree. Authenticate with `Authorization: Api-Key <key>` (tenant-scoped keys) "
        "or `Authorization: Token <token>` from /api/v1/auth/token/. Errors are "
        '{"errors": [{"index", "field", "message"}]} or {"detail": ...}.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

Q_CLUSTER = {
    "name": "usage_portal",
    "workers": env_int("USAGE_Q_WORKERS", 2),
    "timeout": 3600,
    # retry must exceed timeout, or a long rollup is handed to a second worker.
    "retry": 4000,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Tasks",
    # The scheduler runs once per 30 s of guard cycles: a cycle of 30 makes it run at start.
    "guard_cycle": float(os.environ.get("USAGE_Q_GUARD_CYCLE") or 0.5),
}
if os.environ.get("REDIS_URL"):
    Q_CLUSTER["redis"] = os.environ["REDIS_URL"]
else:
    Q_CLUSTER["orm"] = "default"
if env_bool("USAGE_Q_SYNC"):
    # Tests run tasks in-process; django-q2 reads this once at import time.
    Q_CLUSTER["sync"] = True

USAGE_ROLLUP_INTERVAL_MINUTES = env_int("USAGE_ROLLUP_INTERVAL_MINUTES", 1440)
# Where raw usage events live (metering.stores): "orm", the relational event table,
# or "clickhouse" at CLICKHOUSE_URL (http(s)://user:pass@host:8123/db for a server or
# cluster, chdb://<absolute dir> for the embedded engine).
USAGE_EVENT_STORE = os.environ.get("USAGE_EVENT_STORE", "orm").strip().lower()
if USAGE_EVENT_STORE not in {"orm", "clickhouse"}:
    raise ImproperlyConfigured("USAGE_EVENT_STORE must be orm or clickhouse.")
CLICKHOUSE_URL = os.environ.get("CLICKHOUSE_URL", "")
if USAGE_EVENT_STORE == "clickhouse" and not CLICKHOUSE_URL:
    raise ImproperlyConfigured("USAGE_EVENT_STORE=clickhouse needs CLICKHOUSE_URL.")
# The event table's engine and ON CLUSTER clause (see docs/operations.md): a single
# node by default; a cluster names ReplicatedReplacingMergeTree and its cluster.
CLICKHOUSE_ENGINE = os.environ.get("CLICKHOUSE_ENGINE", "ReplacingMergeTree(version)")
CLICKHOUSE_CLUSTER = os.environ.get("CLICKHOUSE_CLUSTER", "")
USAGE_BACKDATE_DAYS = env_int("USAGE_BACKDATE_DAYS", 35)
# Compaction (billing.usage.compaction): a rollup is queued when this many events wait in
# the real-time tail (0: never), at most once per USAGE_COMPACT_SECONDS.
USAGE_COMPACT_EVENTS = env_int("USAGE_COMPACT_EVENTS", 1000)
USAGE_COMPACT_SECONDS = env_int("USAGE_COMPACT_SECONDS", 2)

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS")
# The platform's own brand: what pages and mail show where no partner or reseller
# brand applies (accounts.brands).
USAGE_BRAND_NAME = os.environ.get("USAGE_BRAND_NAME", "Usage Portal")
USAGE_BRAND_COLOR = os.environ.get("USAGE_BRAND_COLOR", "#14202e").lower()
if not re.fullmatch(r"#[0-9a-f]{6}", USAGE_BRAND_COLOR):
    raise ImproperlyConfigured("USAGE_BRAND_COLOR must be #rrggbb.")
USAGE_SUPPORT_EMAIL = os.environ.get("USAGE_SUPPORT_EMAIL", "")
# Logo addresses are fetched by the portal: never from its own network unless allowed.
USAGE_LOGO_ALLOW_PRIVATE = env_bool("USAGE_LOGO_ALLOW_PRIVATE")
USAGE_LOGO_TIMEOUT_SECONDS = 5
# Where the portal is reached, for links in mail (reports, unsubscribe).
USAGE_PORTAL_URL = os.environ.get("USAGE_PORTAL_URL", "http://127.0.0.1:8000")
# Webhook URLs on private or loopback addresses are refused unless this is set.
USAGE_WEBHOOK_ALLOW_PRIVATE = env_bool("USAGE_WEBHOOK_ALLOW_PRIVATE")
USAGE_WEBHOOK_TIMEOUT_SECONDS = 5
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "usage-portal@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
