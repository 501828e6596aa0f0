//! Field errors worded like the Kubernetes API server's (`k8s.io/apimachinery` `field.Error`).
//!
//! The API server prints `spec.rules[0].backendRefs[0]: Invalid value: "object": <message>`;
//! users search for those exact words, so schema findings keep that shape.

use std::fmt;

/// What kind of problem a [`FieldError`] is; mirrors the API server's error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `Invalid value: <value>: <detail>`.
    Invalid,
    /// A value of the wrong JSON type; blocks CEL evaluation like in the API server.
    TypeInvalid,
    /// `Required value[: <detail>]`.
    Required,
    /// `Unsupported value: <value>: supported values: …`; blocks CEL evaluation.
    Unsupported,
    /// `Forbidden: <detail>`.
    Forbidden,
    /// `Duplicate value: <value>`.
    Duplicate,
    /// `Too long: <detail>`.
    TooLong,
    /// `Too many: <value>: <detail>`.
    TooMany,
    /// A field the schema does not declare (strict decoding, like `kubectl --validate=strict`).
    UnknownField,
    /// A CEL rule that could not be evaluated here (reported as a warning, not a verdict).
    Unevaluated,
}

/// One problem with one field of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.rules[0].backendRefs[0]`; map keys are written `[key]`.
    pub path: String,
    pub kind: FieldErrorKind,
    /// The value part, already formatted (`"object"`, `3`, `"Foo"`), or empty.
    pub value: String,
    pub detail: String,
    /// The CEL rule behind the error, if a rule produced it.
    pub rule: Option<String>,
}

impl FieldError {
    pub(crate) fn new(
        path: &str,
        kind: FieldErrorKind,
        value: String,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            path: path.to_owned(),
            kind,
            value,
            detail: detail.into(),
            rule: None,
        }
    }

    /// True for the error types after which the API server skips CEL rules.
    pub fn is_blocking(&self) -> bool {
        matches!(
            self.kind,
            FieldErrorKind::TypeInvalid | FieldErrorKind::Unsupported
        )
    }

    /// The text after the path: `Invalid value: "object": only Gateway is supported`.
    pub fn body(&self) -> String {
        let head = match self.kind {
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Unsupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::UnknownField => return format!("unknown field \"{}\"", self.path),
            FieldErrorKind::Unevaluated => "rule not evaluated",
        };
        let mut out = head.to_owned();
        let shows_value = !matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if shows_value && !self.value.is_empty() {
            out.push_str(": ");
            out.push_str(&self.value);
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == FieldErrorKind::UnknownField || self.path.is_empty() {
            return f.write_str(&self.body());
        }
        write!(f, "{}: {}", self.path, self.body())
    }
}

/// Formats a JSON value the way the API server prints a bad value: strings quoted, numbers and
/// booleans bare, collections as JSON.
pub(crate) fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

/// Go's `%q` for the plain strings we print (JSON string escaping is the same for them).
pub(crate) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The API server's whole rejection text for one object:
/// `MCPRoute.aigateway.envoyproxy.io "name" is invalid: <error>[, <error>…]`.
pub fn apiserver_message(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> String {
    let resource = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let joined = if list.len() == 1 {
        list[0].clone()
    } else {
        format!("[{}]", list.join(", "))
    };
    format!("{resource} {} is invalid: {joined}", quote(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_api_server() {
        let e = FieldError::new(
            "spec.rules[0].backendRefs[0]",
            FieldErrorKind::Invalid,
            quote("object"),
            "group and kind must be specified together",
        );
        assert_eq!(
            e.to_string(),
            "spec.rules[0].backendRefs[0]: Invalid value: \"object\": group and kind must be specified together"
        );
        let r = FieldError::new("spec.rules", FieldErrorKind::Required, String::new(), "");
        assert_eq!(r.to_string(), "spec.rules: Required value");
        let u = FieldError::new("spec.foo", FieldErrorKind::UnknownField, String::new(), "");
        assert_eq!(u.to_string(), "unknown field \"spec.foo\"");
        assert_eq!(
            apiserver_message("MCPRoute", "aigateway.envoyproxy.io", "x", &[r]),
            "MCPRoute.aigateway.envoyproxy.io \"x\" is invalid: spec.rules: Required value"
        );
    }
}
