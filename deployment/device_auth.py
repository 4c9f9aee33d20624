"""How a device proves who it is, and how far its token reaches.

`Authorization: Bearer <token>` is the device's only credential. It opens the device endpoints
(/api/v1/device/...) of the device's own project and nothing else:

- the device views accept no other authentication (a user's session or API token gets 401), and
  their queries start from the authenticated device, so they only ever see its project;
- `DeviceTokenBoundaryMiddleware` answers 401 to a Bearer header anywhere else, before any view
  runs, so no other endpoint (API, page, admin) can come to accept one by accident.

Each request looks the token up by its hash with one UPDATE that also stamps `last_seen_at` and
counts the request in the device's one-minute window (RETURNING the count): a revoked token is
refused on the very next request (no cache), and every web worker sees one rate count.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled

from . import keys
from .models import Device

DEVICE_PREFIX = "/api/v1/device/"
WINDOW = timedelta(minutes=1)

_TOUCH_SQL = """
UPDATE {table} SET
    last_seen_at = %(now)s,
    rate_window_count = CASE WHEN rate_window_start >= %(since)s THEN rate_window_count + 1 ELSE 1 END,
    rate_window_start = CASE WHEN rate_window_start >= %(since)s THEN rate_window_start ELSE %(now)s END
WHERE token_hash = %(hash)s AND revoked_at IS NULL
RETURNING id, rate_window_count, rate_window_start
"""


class DevicePrincipal:
    """`request.user` of a device request: authenticated, but no person and no permissions."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, device):
        self.device = device
        self.username = f"device:{device.pk}"

    def has_perm(self, *args, **kwargs):
        return False

    def __str__(self):
        return self.username


def bearer_token(request):
    """The token of an `Authorization: Bearer` header, '' for a malformed one, None without one."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        return ""
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return ""


class DeviceTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            return None
        if not token:
            raise AuthenticationFailed("Malformed Authorization header; send 'Bearer <device token>'.")
        now = timezone.now()
        sql = _TOUCH_SQL.format(table=connection.ops.quote_name(Device._meta.db_table))
        with connection.cursor() as cursor:
            cursor.execute(sql, {"now": now, "since": now - WINDOW, "hash": keys.secret_hash(token)})
            row = cursor.fetchone()
        if row is None:
            raise AuthenticationFailed("Unknown or revoked device token.")
        device_id, count, window_start = row
        limit = settings.CONCORD_DEPLOYMENT["BATCHES_PER_MINUTE"]
        if count > limit:
            if isinstance(window_start, str):  # SQLite returns the text it stores
                window_start = timezone.datetime.fromisoformat(window_start)
            wait = max(1, int((window_start + WINDOW - now).total_seconds()) + 1)
            raise Throttled(wait=wait, detail=f"This device sent more than {limit} requests in a minute; slow down.")
        device = Device.objects.select_related("project").get(pk=device_id)
        return DevicePrincipal(device), device

    def authenticate_header(self, request):
        return 'Bearer realm="concord-device"'


class IsDevice(permissions.BasePermission):
    message = "Only a device token opens this endpoint."

    def has_permission(self, request, view):
        return isinstance(request.auth, Device)


class DeviceTokenBoundaryMiddleware:
    """401 for a Bearer token outside /api/v1/device/ (module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header[:7].lower() == "bearer " and not request.path.startswith(DEVICE_PREFIX):
            response = JsonResponse(
                {"detail": f"A device token opens only {DEVICE_PREFIX}; this endpoint is for people."}, status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="concord-device"'
            return response
        return self.get_response(request)


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """The device token in the API schema (drf-spectacular finds it by the class it names)."""

    target_class = "deployment.device_auth.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A device token (shown once when made)."}
