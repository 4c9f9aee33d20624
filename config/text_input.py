"""Refuse text with control characters before any view sees it (annotation/text_rules.py's rule).

One middleware rather than a check in every serializer and form: a NUL anywhere in a query
string, a form field or a JSON body would otherwise reach PostgreSQL, which cannot store it and
answers an error (a 500), and every new field would need to remember the rule. The answer is a
400 naming the field: JSON for /api/ paths (shaped like DRF's validation errors), plain text for
pages. Uploaded files' contents are not looked at here: the importers apply the same rule row by
row (a bad row is reported, the good ones land).
"""

import json

from django.http import HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError

from annotation.text_rules import control_character_problem, json_text_problems

API_PREFIX = "/api/"
# Device telemetry checks every string itself (deployment/telemetry_records.py) and stores no free
# text; reading its body here would parse each batch twice and cap it below its own gzip-aware limit.
SKIP_BODY_PREFIXES = ("/api/v1/device/telemetry",)
MAX_FIELD_NAME_SHOWN = 100


class TextInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        found = first_problem(request)
        if found is not None:
            return refusal(request, *found)
        return self.get_response(request)


def first_problem(request):
    """(field, message) for the first piece of refused text in the request, or None."""
    problem = control_character_problem(request.path_info)
    if problem:
        return "path", problem
    found = _query_dict_problem(request.GET)
    if found:
        return found
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    if request.path_info.startswith(SKIP_BODY_PREFIXES):
        return None
    content_type = request.content_type or ""
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            post = request.POST
        except MultiPartParserError as exc:
            return "body", f"the form data cannot be read ({exc})"
        # Uploaded files' names need no look: Django's parser drops control characters from them.
        return _query_dict_problem(post)
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return None  # not JSON: the view's parser answers that with its own 400
        return next(json_text_problems(data), None)
    return None


def _query_dict_problem(query):
    for key, values in query.lists():
        problem = control_character_problem(key)
        if problem:
            return "query string", f"a field name {problem}"
        for value in values:
            problem = control_character_problem(value)
            if problem:
                return key, problem
    return None


def refusal(request, field, message):
    field = field[:MAX_FIELD_NAME_SHOWN]
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({field: [message]}, status=400)
    return HttpResponseBadRequest(
        f"Bad request: the field {field!r} {message}. Go back, correct it and send it again.\n",
        content_type="text/plain; charset=utf-8",
    )
