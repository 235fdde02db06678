//! The contract in code: the OpenAPI 3.1 document, generated from the handlers.
//!
//! Each service declares its operations beside the handlers (`#[utoipa::path]`, collected with
//! `utoipa_axum::routes!`, so an operation is routed exactly where it is documented) and hands
//! its part over as `ServiceParts::api`. [`document`] joins the parts and adds what holds for
//! every operation alike, so that no handler repeats it:
//!
//! - **Who may call.** An operation lists the roles that may call it as the scopes of its `bearer`
//!   requirement (`security(("bearer" = ["customer"]))`); the operator is added to every list,
//!   since an operator may do everything. A public operation says so with `security(())`. One
//!   that says nothing is the operator's alone, as the contract has it.
//! - **The problems every operation can answer**, each an RFC 9457 problem: 401 and 403 when it
//!   needs credentials, 400 when it takes input (415 when its body is not JSON), 404 for a resource named in the path, 422 when it
//!   takes an `Idempotency-Key`, 413 and 429 for writes, 503 for all (a store or a service that is
//!   momentarily unavailable).
//!
//! The test suite walks this document and calls every operation without credentials and with the
//! wrong ones, so an operation added without its check fails there.

use serde_json::{Map, Value, json};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::Role;
use crate::problem::Problem;

/// The name of the security scheme every protected operation requires.
pub const BEARER: &str = "bearer";

/// The HTTP methods an operation can be declared under, as the document spells them.
pub const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The whole API: every part, tagged with the name of the service it is from, joined, with what
/// is common to all operations filled in.
pub fn document<'a>(parts: impl IntoIterator<Item = (&'a str, OpenApi)>) -> Value {
    let mut api = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Tanda")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .build();
    for (name, mut part) in parts {
        tag(&mut part, name);
        assert_no_clash(&api, &part, name);
        api.merge(part);
    }
    let mut doc = serde_json::to_value(&api).expect("an OpenAPI document serializes");
    add_components(&mut doc);
    let mut operation_ids = std::collections::BTreeSet::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                if let Some(operation) = item.get_mut(method) {
                    complete(path, method, operation);
                    let id = operation["operationId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    // Clients are generated from these: one name, one operation.
                    assert!(
                        operation_ids.insert(id.clone()),
                        "operationId {id} is taken twice"
                    );
                }
            }
        }
    }
    doc
}

/// Two parts may share a schema only if they define it alike: merging keeps one of them, and the
/// other part's operations would be documented with a body they do not send.
fn assert_no_clash(api: &OpenApi, part: &OpenApi, name: &str) {
    let (Some(ours), Some(theirs)) = (&api.components, &part.components) else {
        return;
    };
    for (schema, definition) in &theirs.schemas {
        if let Some(existing) = ours.schemas.get(schema) {
            assert!(
                existing == definition,
                "schema {schema} of {name} differs from another part's: name one of them apart"
            );
        }
    }
}

fn tag(api: &mut OpenApi, name: &str) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.tags = Some(vec![name.to_owned()]);
        }
    }
}

const DESCRIPTION: &str = "Taxi booking and dispatch, and flight reservations. Every call needs a \
bearer token from `POST /auth/token` unless it is marked public; an operation's roles are the \
scopes of its `bearer` requirement. Errors are RFC 9457 problems with a machine-readable `code`: \
400 when the request itself is malformed or a value is invalid whatever the state of the system; \
409 when it is well-formed but not allowed in the current state; 422 only when an \
`Idempotency-Key` is sent again with a different request. Asking for someone else's \
resource answers 404, as if it did not exist.";

fn add_components(doc: &mut Value) {
    let components = doc
        .as_object_mut()
        .expect("a document is an object")
        .entry("components")
        .or_insert_with(|| json!({}));
    components["securitySchemes"] = json!({
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /auth/token` (or the configured \
                OpenID Connect issuer). The web pages carry the same token in their session cookie.",
        }
    });
    let schemas = components
        .as_object_mut()
        .expect("components is an object")
        .entry("schemas")
        .or_insert_with(|| json!({}));
    schemas[Problem::name().as_ref()] =
        serde_json::to_value(Problem::schema()).expect("a schema serializes");
}

/// Fills in the operation's security and the problems it can answer.
fn complete(path: &str, method: &str, operation: &mut Value) {
    let secured = normalize_security(operation);
    let has_path_params = path.contains('{');
    let operation_has_body = operation.get("requestBody").is_some();
    let takes_input = operation_has_body
        || operation["parameters"]
            .as_array()
            .is_some_and(|p| !p.is_empty());
    let writes = method != "get";
    let idempotent = operation["parameters"].as_array().is_some_and(|p| {
        p.iter()
            .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key")
    });
    let responses = operation
        .as_object_mut()
        .expect("an operation is an object")
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    let mut add = |status: &str, description: &str, retry: bool| {
        responses
            .entry(status)
            .or_insert_with(|| problem_response(description, retry));
    };
    if takes_input {
        add("400", "Malformed request or invalid value", false);
    }
    if operation_has_body {
        add("415", "The body is not `application/json`", false);
    }
    if secured {
        add(
            "401",
            "No credentials, or credentials that are not valid",
            false,
        );
        add("403", "These credentials may not do this", false);
    }
    if has_path_params {
        add("404", "No such resource (or not the caller's)", false);
    }
    if idempotent {
        add(
            "422",
            "`idempotency_key_reused`: this Idempotency-Key came with another request",
            false,
        );
    }
    if writes {
        add("413", "The request body is too large", false);
        add("429", "Too many writes from this caller", true);
    }
    add("503", "Temporarily unavailable", true);
    // An operation's own 429 or 503 says when to come back, as every one of them does.
    for status in ["429", "503"] {
        if let Some(response) = responses.get_mut(status)
            && response.get("headers").is_none()
        {
            response["headers"] = retry_after();
        }
    }
}

/// Public operations (`security(())`) get an empty list; the others one `bearer` requirement
/// whose scopes are the roles that may call, the operator's always among them. Returns whether
/// the operation needs credentials.
fn normalize_security(operation: &mut Value) -> bool {
    let declared = operation.get("security").and_then(Value::as_array).cloned();
    let roles: Option<Vec<String>> = match declared {
        None => Some(Vec::new()),
        Some(requirements) => requirements.iter().find_map(|r| {
            r.get(BEARER).map(|scopes| {
                scopes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
        }),
    };
    let Some(mut roles) = roles else {
        operation["security"] = json!([]);
        return false;
    };
    for role in &roles {
        assert!(
            Role::parse(role).is_some(),
            "unknown role {role:?} in a security requirement"
        );
    }
    let operator = Role::Operator.as_str().to_owned();
    if !roles.contains(&operator) {
        roles.push(operator);
    }
    let mut requirement = Map::new();
    requirement.insert(BEARER.to_owned(), json!(roles));
    operation["security"] = json!([requirement]);
    true
}

fn problem_response(description: &str, retry: bool) -> Value {
    let mut response = json!({
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": { "$ref": format!("#/components/schemas/{}", Problem::name()) }
            }
        }
    });
    if retry {
        response["headers"] = retry_after();
    }
    response
}

fn retry_after() -> Value {
    json!({
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{PathsBuilder, ResponseBuilder};

    fn part(path: &str, method: HttpMethod, security: Option<Vec<SecurityRequirement>>) -> OpenApi {
        let mut operation = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build());
        if let Some(security) = security {
            operation = operation.securities(Some(security));
        }
        let paths = PathsBuilder::new()
            .path(path, PathItem::new(method, operation.build()))
            .build();
        OpenApiBuilder::new().paths(paths).build()
    }

    fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
        &doc["paths"][path][method]
    }

    #[test]
    fn roles_always_include_the_operator() {
        let doc = document([(
            "test",
            part(
                "/books/{bookId}",
                HttpMethod::Get,
                Some(vec![SecurityRequirement::new(BEARER, ["customer"])]),
            ),
        )]);
        let op = operation(&doc, "/books/{bookId}", "get");
        assert_eq!(
            op["security"],
            json!([{ "bearer": ["customer", "operator"] }])
        );
        for status in ["401", "403", "404", "503"] {
            assert!(op["responses"][status].is_object(), "{status} missing");
        }
        assert!(
            op["responses"]["429"].is_null(),
            "a read is not write-limited"
        );
    }

    #[test]
    fn an_operation_that_declares_nothing_is_the_operators() {
        let doc = document([("test", part("/admin/x", HttpMethod::Post, None))]);
        let op = operation(&doc, "/admin/x", "post");
        assert_eq!(op["security"], json!([{ "bearer": ["operator"] }]));
        assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
    }

    #[test]
    fn a_public_operation_needs_no_credentials() {
        let doc = document([(
            "test",
            part(
                "/healthz",
                HttpMethod::Get,
                Some(vec![SecurityRequirement::default()]),
            ),
        )]);
        let op = operation(&doc, "/healthz", "get");
        assert_eq!(op["security"], json!([]));
        assert!(op["responses"]["401"].is_null());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
