//! Completes the generated OpenAPI document with what the handlers' annotations leave implicit,
//! so that tools generating clients from it get the whole contract:
//! - the security schemes (a kiosk's bearer token; a person's session cookie, plus the CSRF
//!   header on every state-changing request) and each operation's `security`, read from the
//!   roles its doc line states ("Roles: manager, auditor." / "Public"), also given as `x-roles`;
//! - the error statuses every operation can answer, each with the common error body: 401/403
//!   when it needs a role, 400 for malformed paths, queries or bodies, 413/415/422 for bodies,
//!   404 where it names a record, 409 for writes, 500/503 everywhere.
//!
//! The roles written in the document are checked against what the server does by
//! `tests/roles.rs`, which calls every operation as every role.

use serde_json::{json, Map, Value};

pub const KIOSK_SCHEME: &str = "kioskToken";
pub const SESSION_SCHEME: &str = "session";
pub const CSRF_SCHEME: &str = "csrf";

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];
const ROLES: &[&str] = &["kiosk", "staff", "manager", "auditor"];

/// The roles an operation's doc text names after "Roles:"; empty for a public operation.
pub fn roles_of(text: &str) -> Vec<&'static str> {
    let Some((_, after)) = text.split_once("Roles:") else {
        return Vec::new();
    };
    let clause = after.split('.').next().unwrap_or("");
    ROLES
        .iter()
        .copied()
        .filter(|r| clause.contains(r))
        .collect()
}

/// Adds security and error responses to every operation of `doc` (a serialised OpenAPI 3.1).
pub fn complete(mut doc: Value) -> Value {
    add_security_schemes(&mut doc);
    add_error_body(&mut doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            if let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) {
                complete_operation(method, op);
            }
        }
    }
    doc
}

fn add_security_schemes(doc: &mut Value) {
    let schemes = json!({
        KIOSK_SCHEME: {
            "type": "http", "scheme": "bearer",
            "description": "A kiosk's device token from POST /api/v1/kiosk/enrol."
        },
        SESSION_SCHEME: {
            "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
            "description": "A person's session, set by POST /api/v1/auth/login."
        },
        CSRF_SCHEME: {
            "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
            "description": "The csrf_token from the login answer; required with the session on every request that is not GET."
        }
    });
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(Value::Object(c)) = components {
        c.insert("securitySchemes".into(), schemes);
    }
}

/// Makes sure `ErrorBody` is among the components (every error response refers to it).
fn add_error_body(doc: &mut Value) {
    let schema = serde_json::to_value(<wire::ErrorBody as utoipa::PartialSchema>::schema())
        .unwrap_or(Value::Null);
    let detail = serde_json::to_value(<wire::ErrorDetail as utoipa::PartialSchema>::schema())
        .unwrap_or(Value::Null);
    if let Some(schemas) = doc
        .pointer_mut("/components")
        .and_then(Value::as_object_mut)
        .map(|c| c.entry("schemas").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        schemas.entry("ErrorBody").or_insert(schema);
        schemas.entry("ErrorDetail").or_insert(detail);
    }
}

fn complete_operation(method: &str, op: &mut Map<String, Value>) {
    let text = ["summary", "description"]
        .iter()
        .filter_map(|k| op.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let roles = roles_of(&text);
    let writes = !matches!(method, "get" | "head" | "options");
    let security: Vec<Value> = {
        let mut alternatives = Vec::new();
        if roles.contains(&"kiosk") {
            alternatives.push(json!({ KIOSK_SCHEME: [] }));
        }
        if roles.iter().any(|r| *r != "kiosk") {
            alternatives.push(if writes {
                json!({ SESSION_SCHEME: [], CSRF_SCHEME: [] })
            } else {
                json!({ SESSION_SCHEME: [] })
            });
        }
        alternatives
    };
    op.insert("security".into(), Value::Array(security));
    op.insert("x-roles".into(), json!(roles));

    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |place: &str| params.iter().any(|p| p["in"] == place);
    let json_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/json"));
    let any_body = op.contains_key("requestBody");

    let mut errors: Vec<(&str, &str)> = vec![
        ("500", "An internal error (details are logged, not sent)."),
        ("503", "Busy or a component unavailable; retry later."),
    ];
    if !roles.is_empty() {
        errors.push(("401", "No credentials, or they are unknown or expired."));
        errors.push((
            "403",
            "The caller's role may not do this (or a missing or wrong CSRF token).",
        ));
    }
    if has("path") || has("query") || json_body {
        errors.push((
            "400",
            "A malformed path, query or body (`bad_path`, `bad_query`, `bad_json`).",
        ));
    }
    if has("path") || json_body {
        errors.push((
            "404",
            "A record the request names does not exist (or is not the caller's).",
        ));
    }
    if any_body {
        errors.push(("413", "The body is larger than this operation takes."));
        errors.push((
            "415",
            "The body's Content-Type is not one this operation reads.",
        ));
    }
    if json_body || writes {
        errors.push((
            "422",
            "A field breaks its rule (the code names the rule), or the request breaks a business rule.",
        ));
    }
    if writes {
        errors.push((
            "409",
            "The request conflicts with the current state (duplicate, already done, key reused).",
        ));
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(responses) = responses {
        for (status, description) in errors {
            responses
                .entry(status)
                .or_insert_with(|| error_response(description));
        }
        // Error responses an annotation declared without a body get the common one.
        for (status, r) in responses.iter_mut() {
            if status.starts_with('4') || status.starts_with('5') {
                if let Some(r) = r.as_object_mut() {
                    r.entry("content").or_insert_with(error_content);
                }
            }
        }
    }
}

fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": error_content()})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's `HH:MM` rule and the ledger's reading of it accept the same strings.
    #[test]
    fn local_time_kind_agrees_with_the_ledger() {
        for h in 0..=25 {
            for m in [0, 1, 9, 30, 59, 60] {
                for s in [
                    format!("{h:02}:{m:02}"),
                    format!("{h}:{m:02}"),
                    format!("{h:02}:{m}"),
                ] {
                    assert_eq!(
                        wire::fields::LocalTime::parse(&s).is_ok(),
                        ledger::meal::parse_hhmm(&s).is_ok(),
                        "{s}"
                    );
                }
            }
        }
        for s in ["", "24:01", "ab:cd", "12", "12:345", "-1:00"] {
            assert_eq!(
                wire::fields::LocalTime::parse(s).is_ok(),
                ledger::meal::parse_hhmm(s).is_ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn roles_come_from_the_doc_line() {
        assert_eq!(
            roles_of("List staff. Roles: manager, auditor."),
            ["manager", "auditor"]
        );
        assert_eq!(
            roles_of(
                "Who is calling. Roles: any authenticated caller (kiosk, staff, manager, auditor)."
            ),
            ["kiosk", "staff", "manager", "auditor"]
        );
        assert!(roles_of("Exchange a code. Public (the code is the credential).").is_empty());
    }

    #[test]
    fn an_operation_gets_security_and_errors() {
        let doc = json!({"openapi": "3.1.0", "paths": {"/x/{id}": {"post": {
            "summary": "Do it. Roles: manager.",
            "parameters": [{"name": "id", "in": "path", "required": true}],
            "requestBody": {"content": {"application/json": {}}},
            "responses": {"200": {"description": "ok"}}
        }}}});
        let out = complete(doc);
        let op = &out["paths"]["/x/{id}"]["post"];
        assert_eq!(op["security"], json!([{ "session": [], "csrf": [] }]));
        for s in [
            "400", "401", "403", "404", "409", "413", "415", "422", "500", "503",
        ] {
            assert_eq!(
                op["responses"][s]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{s}"
            );
        }
        assert!(out["components"]["securitySchemes"]["kioskToken"].is_object());
    }
}
