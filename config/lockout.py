"""What a client locked out by django-axes gets (limits: LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_SECONDS in settings).

The login page shows its form again with the reason (the admin's login too, as our page), and the
API's token endpoint answers JSON; both with 429 and a Retry-After header. The password is never checked
while the lockout lasts, so a right one is refused as well.
"""

import math

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.shortcuts import render
from rest_framework import serializers, status
from rest_framework.authtoken import views as authtoken_views
from rest_framework.response import Response


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check, first in AUTHENTICATION_BACKENDS, skipped when `authenticate()` gets no request.

    Only code calls it so (Django's test client's `login()`, scripts): there is no client to
    throttle, and the login pages and the token endpoint always pass theirs.
    """

    def authenticate(self, request, *args, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


def lockout_message():
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return (
        f"Too many failed logins for this account from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


def _retry_after():
    return str(math.ceil(settings.AXES_COOLOFF_TIME.total_seconds()))


class _LockedOutForm(AuthenticationForm):
    """The login form refusing without authenticating (which would only count another failure)."""

    def clean(self):
        raise ValidationError(lockout_message(), code="locked_out")


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: called by axes' middleware for a request it refused."""
    form = _LockedOutForm(request, data=request.POST)
    form.is_valid()
    next_url = request.POST.get("next") or request.GET.get("next", "")
    response = render(
        request,
        "registration/login.html",
        {"form": form, "next": next_url},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
    )
    response["Retry-After"] = _retry_after()
    return response


class ObtainAuthToken(authtoken_views.ObtainAuthToken):
    """DRF's token endpoint, answering 429 instead of its 400 while the caller is locked out.

    Axes marks DRF's request object, which its middleware (holding Django's) never sees.
    """

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except serializers.ValidationError:
            if getattr(request, "axes_locked_out", False):
                return Response(
                    {"detail": lockout_message()},
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                    headers={"Retry-After": _retry_after()},
                )
            raise


obtain_auth_token = ObtainAuthToken.as_view()
