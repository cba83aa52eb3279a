"""Schemathesis checks for the identity API (loaded through SCHEMATHESIS_HOOKS).

Expected client errors (BAD_USER_INPUT, UNAUTHENTICATED, INVALID_TOKEN, ...) are the
API working as specified, so the built-in `not_a_server_error` check, which counts
every resolver error, is replaced by this one: a failure is an HTTP 5xx, a body that
is not JSON, an error without an `extensions.code`, or INTERNAL_SERVER_ERROR.
"""

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes


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


def _json_object(fields):
    """A GraphQL object literal from (name, value node) pairs."""
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)
            for name, value in fields
        ]
    )


# `JSON` (a passkey credential, later an export) takes any JSON value: generate small
# nested ones, as literals in the query.
_json_leaf = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers(min_value=-(10**6), max_value=10**6).map(nodes.Int),
    st.text(max_size=20).map(nodes.String),
)
schemathesis.graphql.scalar(
    "JSON",
    st.recursive(
        _json_leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(nodes.List),
            st.lists(
                st.tuples(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z"), children),
                max_size=3,
                unique_by=lambda field: field[0],
            ).map(_json_object),
        ),
        max_leaves=8,
    ),
)
