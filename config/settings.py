"""Concord settings: everything that differs between machines comes from the environment.

Bad values fail loudly at start-up (ImproperlyConfigured) instead of surfacing later.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_bool(name, default):
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS | FALSE_WORDS:
        return raw in TRUE_WORDS
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name, default):
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def _choice(name, value, allowed):
    scheme = urlsplit(value).scheme
    if scheme not in allowed:
        raise ImproperlyConfigured(
            f"{name}={value!r}: scheme {scheme!r} is not supported; use one of {', '.join(sorted(allowed))}"
        )
    return scheme


DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. With DEBUG off every default is the production one (`manage.py check --deploy` is clean);
# a plain-HTTP run on loopback (`make run`) turns them off explicitly.
_https = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _https else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _https)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _https)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _https)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _https)
# Behind a TLS-terminating proxy: "HTTP_X_FORWARDED_PROTO,https". Only when the proxy is the sole way
# in and overwrites that header, or a client could claim HTTPS.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        f"SECURE_PROXY_SSL_HEADER={','.join(_proxy_ssl_header)!r}: give a header and its value, "
        "e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files (the CSP allows no CDN)
    "axes",
    "annotation",
    "active_learning",
    "training",
    "deployment",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Refuses NUL and other control characters in any parameter, naming the field (annotation/text_rules.py).
    "config.text_input.TextInputMiddleware",
    # A device's Bearer token opens /api/v1/device/ only: 401 anywhere else (deployment/device_auth.py).
    "deployment.device_auth.DeviceTokenBoundaryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last: turns a login refused for too many failures into the lockout answer (config/lockout.py).
    "axes.middleware.AxesMiddleware",
]

if not DEBUG:
    # Serves collected static files in containers, so no separate server is needed.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
_db_scheme = _choice("DATABASE_URL", DATABASE_URL, {"sqlite", "postgres", "postgresql", "pgsql"})
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
if _db_scheme == "sqlite":
    VAR_DIR.mkdir(exist_ok=True)
    # Wait for a writer instead of failing at once: the web server and the worker share the file.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    # A file, not Django's shared in-memory database: the live server's request threads in the
    # browser tests then get connections of their own. One file per test run (TEST_DATABASE_NAME,
    # else by process id), so two `make test` runs at once never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("TEST_DATABASE_NAME", default=str(VAR_DIR / f"test-{os.getpid()}.sqlite3"))
    }
# Persistent connections, checked before each request reuses one: a connection the database dropped
# (restart, failover, an idle timeout) is replaced instead of failing the request with a 500.
# SQLite gains nothing from keeping its file open across the development server's request threads.
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("CONN_MAX_AGE", 0 if _db_scheme == "sqlite" else 60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and address before the password is checked at all.
    "config.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "frontend:project-list"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes), on the login page, the admin's and the API token endpoint. After
# LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused
# (429), even with the right password, until LOGIN_COOLOFF_SECONDS after the lockout. Failures are
# counted in the database, so every web worker sees the same count.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_COOLOFF_SECONDS", 15 * 60))
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME.total_seconds() < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_SECONDS must be 1 or more")
# Username and address together: an attacker cannot lock a user out from elsewhere, and people
# behind one office NAT do not lock each other out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The cool-off runs from the lockout; attempts during it neither count nor extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "config.lockout.lockout_response"
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Content-Security-Policy, enforced. Scripts and styles only from our own static files: the
# templates have no inline <script>, on*= handler or style attribute, and a page that adds one
# fails here first.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF],  # also keeps guideline Markdown from loading images from elsewhere
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Uploads bigger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous request gets 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Concord API",
    "DESCRIPTION": "Data annotation with label consistency at its heart.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Names for choice sets that share a field name, so the schema (and `check --deploy`) has no warnings.
    "ENUM_NAME_OVERRIDES": {
        "ModelStageEnum": "training.models.ModelVersion.Stage",
        "CycleStageEnum": "active_learning.models.Cycle.Stage",
        "CycleStrategyEnum": "active_learning.models.STRATEGY_CHOICES",
        "LaunchStrategyEnum": "active_learning.sampling.STRATEGIES",
        "JobStatusEnum": "annotation.models.ImportBatch.Status",  # also DatasetExport.Status: the same states
        "ModelVersionStatusEnum": "training.models.ModelVersion.Status",
        "ModelExportStatusEnum": "training.models.ModelExport.Status",
        "CycleStatusEnum": "active_learning.models.Cycle.Status",
        "SplitEnum": "annotation.models.Split",  # Item.split and the leakage move's target
        "ModelExportFormatEnum": "training.models.ModelExport.Format",
        "TuningTrialStatusEnum": "training.models.TuningTrial.Status",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Celery. The default broker is kombu's filesystem transport under var/, so `make run`
# needs no broker server; redis:// or amqp:// use a real one.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_broker_scheme = _choice("CELERY_BROKER_URL", CELERY_BROKER_URL, {"filesystem", "redis", "rediss", "amqp", "memory"})
if _broker_scheme == "filesystem":
    _queue_dir = VAR_DIR / "celery" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


def _positive(name, default):
    value = env_int(name, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name}={value} must be at least 1")
    return value


# Work survives a dead worker (training/heartbeat.py, training/recovery.py, active_learning/recovery.py).
# Tasks are acknowledged late, so the message of a task whose worker process dies stays in the
# broker; with Redis it is delivered again only after the visibility timeout. That timeout must
# outlast the longest task (a Keras training or a cycle's training step on a large project), or a
# task still running is delivered a second time: hence hours, not minutes. A dead worker is found
# sooner by heartbeat: running trainings, exports and cycles are stamped every HEARTBEAT_SECONDS,
# and Celery beat (`celery -A config beat`) runs the reapers every REAP_EVERY_SECONDS; they re-queue
# work whose heartbeat stopped for the app's STALE_AFTER_SECONDS (CONCORD_TRAINING,
# CONCORD_ACTIVE_LEARNING), and fail it with the reason once it has had MAX_ATTEMPTS runs.
if _broker_scheme in {"redis", "rediss"}:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _positive("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)}
CONCORD_WORKER = {
    "HEARTBEAT_SECONDS": _positive("CONCORD_WORKER_HEARTBEAT_SECONDS", 15),
    "REAP_EVERY_SECONDS": _positive("CONCORD_WORKER_REAP_EVERY_SECONDS", 60),
    "MAX_ATTEMPTS": _positive("CONCORD_WORKER_MAX_ATTEMPTS", 3),  # runs of one piece of work, the first included
}
CELERY_BEAT_SCHEDULE = {
    name: {
        "task": task,
        "schedule": float(CONCORD_WORKER["REAP_EVERY_SECONDS"]),
        # A reaper queued while no worker runs is dropped rather than run many times over later.
        "options": {"expires": float(CONCORD_WORKER["REAP_EVERY_SECONDS"])},
    }
    for name, task in [("reap-trainings-and-exports", "training.reap"), ("reap-cycles", "active_learning.reap")]
}

# App tuning, one namespaced dict per app.
CONCORD_IMPORT = {
    "MAX_UPLOAD_BYTES": env_int("CONCORD_IMPORT_MAX_UPLOAD_BYTES", 500 * 1024 * 1024),
    "MAX_IMAGE_BYTES": env_int("CONCORD_IMPORT_MAX_IMAGE_BYTES", 20 * 1024 * 1024),
    "MAX_IMAGE_PIXELS": env_int("CONCORD_IMPORT_MAX_IMAGE_PIXELS", 40_000_000),
    "MAX_TEXT_CHARS": env_int("CONCORD_IMPORT_MAX_TEXT_CHARS", 100_000),
    "MAX_ZIP_TOTAL_BYTES": env_int("CONCORD_IMPORT_MAX_ZIP_TOTAL_BYTES", 1024**3),  # checked before unpacking
    "MAX_ZIP_MEMBERS": env_int("CONCORD_IMPORT_MAX_ZIP_MEMBERS", 100_000),
    "QUEUE_ABOVE_BYTES": env_int("CONCORD_IMPORT_QUEUE_ABOVE_BYTES", 5 * 1024 * 1024),  # larger: a worker imports it
    "QUEUE": env.str("CONCORD_IMPORT_QUEUE", default=""),  # Celery queue of queued imports; "" = the default queue
    "THUMBNAIL_SIZE": 128,
    "CHUNK_ROWS": 2000,
}
CONCORD_LABELING = {
    "LEASE_SECONDS": env_int("CONCORD_LABELING_LEASE_SECONDS", 600),  # an unsubmitted item returns to the queue
    "GOLD_RATE": 0.1,  # share of next-item answers that serve a gold item while both kinds remain
    "UNDO_SECONDS": env_int("CONCORD_LABELING_UNDO_SECONDS", 30),  # how long after a submit Z may undo it
    "MAX_NOTE_CHARS": 2000,
    "MAX_EXCLUDE": 3,  # next-item ?exclude= ids (the page holds its current item while it prefetches the next)
    "HIDDEN_METADATA_KEYS": ["gold", "label", "labels", "truth", "target", "answer", "class"],  # and keys "_..."
}
CONCORD_TRAINING = {
    "CV_BELOW_LABELS": 200,  # fewer train+dev labels than this: K-fold cross-validation instead of the dev split
    "CV_FOLDS": 5,
    "CONSENSUS": "dawid_skene",  # or "majority_vote": the label of items with neither resolution nor gold
    "CONSENSUS_MIN_CONFIDENCE": 0.8,  # consensus is a training label only this sure (posterior or vote share)
    "KEEP_AMBIGUITY": False,  # True keeps ambiguous items as their own class
    "TOP_K": 12,  # items per top-k list (confidently wrong, most uncertain)
    # No heartbeat this long: the worker is lost and the reaper re-queues the work (training/recovery.py).
    "STALE_AFTER_SECONDS": env_int("CONCORD_TRAINING_STALE_AFTER_SECONDS", 180),
    "UNCLAIMED_AFTER_SECONDS": 3600,  # queued, never picked up this long: failed when the next training starts
    "TF_THREADS": env_int("CONCORD_TRAINING_TF_THREADS", 0),  # TensorFlow threads in the worker; 0 = its default
    "ARTIFACT_DIR": env.str("CONCORD_TRAINING_ARTIFACT_DIR", default=""),  # "" = MEDIA_ROOT/models
    "EXPORT_MAX_DROP": 0.01,  # an int8 TFLite export losing more dev accuracy than this is rejected
}
CONCORD_ACTIVE_LEARNING = {  # cycles run on the queue CONCORD_TRAINING["QUEUE"] names
    "TRAINER": "sklearn_logreg",  # a cycle's model unless the launch names another
    "BATCH_SIZE": 100,  # the launch form's default batch
    "MAX_BATCH": 5000,
    "SCORE_CHUNK": 512,  # pool items read and predicted at a time
    "MAX_CENTERS": 5000,  # labeled items diversity keeps away from (a seeded sample beyond that)
    "STALE_AFTER_SECONDS": env_int("CONCORD_ACTIVE_LEARNING_STALE_AFTER_SECONDS", 180),  # no heartbeat: re-queued
    "UNCLAIMED_AFTER_SECONDS": 3600,  # queued, never picked up this long: failed when the next cycle launches
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Devices and telemetry (deployment/). Raw telemetry rows are kept RAW_RETENTION_DAYS, then rolled up
# into daily aggregates (kept) and deleted by the beat task below; a record older than that, or
# more than FUTURE_SKEW_SECONDS ahead of the server's clock, is refused.
CONCORD_DEPLOYMENT = {
    "RAW_RETENTION_DAYS": _positive("DEPLOYMENT_RAW_RETENTION_DAYS", 30),
    "MAX_BATCH": _positive("DEPLOYMENT_MAX_BATCH", 1000),  # records per telemetry batch
    "MAX_BODY_BYTES": _positive("DEPLOYMENT_MAX_BODY_BYTES", 16 * 1024 * 1024),  # as sent (gzip or not)
    "MAX_DECOMPRESSED_BYTES": _positive("DEPLOYMENT_MAX_DECOMPRESSED_BYTES", 32 * 1024 * 1024),  # gzip bombs stop here
    "MAX_INPUT_BYTES": _positive("DEPLOYMENT_MAX_INPUT_BYTES", 1024 * 1024),  # one sampled input image
    "BATCHES_PER_MINUTE": _positive("DEPLOYMENT_BATCHES_PER_MINUTE", 120),  # per device, all device endpoints
    "FUTURE_SKEW_SECONDS": 300,
    "ROLLUP_EVERY_SECONDS": _positive("DEPLOYMENT_ROLLUP_EVERY_SECONDS", 3600),
}
CELERY_BEAT_SCHEDULE["deployment-rollup-and-retention"] = {
    "task": "deployment.rollup_and_expire",
    "schedule": float(CONCORD_DEPLOYMENT["ROLLUP_EVERY_SECONDS"]),
    "options": {"expires": float(CONCORD_DEPLOYMENT["ROLLUP_EVERY_SECONDS"])},
}
# Tuning runs (training/tuning.py): budgets above these are refused at launch, so a run stays within
# what one 2-core worker can do in an afternoon; runs go to CONCORD_TRAINING["QUEUE"] like trainings.
CONCORD_TUNING = {
    "MAX_TRIALS": env_int("CONCORD_TUNING_MAX_TRIALS", 50),
    "MAX_MINUTES": env_int("CONCORD_TUNING_MAX_MINUTES", 240),
    "MAX_KERAS_EPOCHS": env_int("CONCORD_TUNING_MAX_KERAS_EPOCHS", 200),  # per trial
    "HALVING_FACTOR": 3,
}
# The tuning reaper, beside the others (training/recovery.py: reap_tuning_runs).
CELERY_BEAT_SCHEDULE["reap-tuning-runs"] = {
    **CELERY_BEAT_SCHEDULE["reap-cycles"],
    "task": "training.reap_tuning",
}

# Field monitoring (deployment/monitoring.py): predictions per tested window, the false-alarm
# probability per window on a stable stream (Bonferroni over the window's tests), the PSI drawn
# as a warning line, and the sampled inputs a window needs for its input-drift test. A project or
# channel overrides them with a MonitoringThresholds row.
_monitoring_alpha = env.float("MONITORING_ALPHA", default=0.001)
if not 0 < _monitoring_alpha < 1:
    raise ImproperlyConfigured(f"MONITORING_ALPHA={_monitoring_alpha} must lie strictly between 0 and 1")
CONCORD_MONITORING = {
    "WINDOW": _positive("MONITORING_WINDOW", 200),
    "ALPHA": _monitoring_alpha,
    "PSI_WARNING": 0.25,
    "MIN_INPUTS": 20,
    "QUEUE": env.str("CONCORD_MONITORING_QUEUE", default=""),  # Celery queue of the task; "" = default
}
CELERY_BEAT_SCHEDULE["deployment-monitoring"] = {
    "task": "deployment.monitor_all",
    "schedule": float(CONCORD_DEPLOYMENT["ROLLUP_EVERY_SECONDS"]),
    "options": {"expires": float(CONCORD_DEPLOYMENT["ROLLUP_EVERY_SECONDS"])},
}
