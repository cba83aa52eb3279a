//! Reading responses: the data of a success, the code and fields of an error, a
//! sample of the metrics.

use serde_json::Value;

/// `data.<field>` of a successful response; panics with the errors otherwise.
pub(crate) fn data<'a>(resp: &'a Value, field: &str) -> &'a Value {
    assert!(resp.get("errors").is_none(), "unexpected errors: {resp}");
    &resp["data"][field]
}

/// The first error's `extensions.code`.
pub(crate) fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {resp}"))
}

pub(crate) fn assert_code(resp: &Value, expected: &str) {
    assert_eq!(code(resp), expected, "{resp}");
}

/// `extensions.fields` of a BAD_USER_INPUT error.
pub(crate) fn fields(resp: &Value) -> &serde_json::Map<String, Value> {
    assert_code(resp, "BAD_USER_INPUT");
    resp["errors"][0]["extensions"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields in {resp}"))
}

/// `extensions.retryAfter` of a RATE_LIMITED error.
pub(crate) fn retry_after(resp: &Value) -> u64 {
    assert_code(resp, "RATE_LIMITED");
    resp["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap()
}

/// The value of the metrics sample whose line starts with `series` (0 if absent).
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
