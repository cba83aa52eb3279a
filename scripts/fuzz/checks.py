"""Schemathesis checks for the identity API (loaded through SCHEMATHESIS_HOOKS).

Expected client errors (BAD_USER_INPUT, UNAUTHENTICATED, INVALID_TOKEN, ...) are the
API working as specified, so the built-in `not_a_server_error` check, which counts
every resolver error, is replaced by this one: a failure is an HTTP 5xx, a body that
is not JSON, an error without an `extensions.code`, or INTERNAL_SERVER_ERROR.
"""

import schemathesis


@schemathesis.check
def no_internal_error(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:300]}")
    try:
        body = response.json()
    except ValueError as exc:
        raise AssertionError(f"not JSON: {response.text[:300]}") from exc
    entries = body if isinstance(body, list) else [body]
    for entry in entries:
        for error in entry.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            if code is None:
                raise AssertionError(f"error without a code: {error}")
            if code == "INTERNAL_SERVER_ERROR":
                raise AssertionError(f"internal error: {error}")
