//! The contract in code, checked against what the server does: the OpenAPI document the gateway
//! serves is walked operation by operation, and each is called without credentials, with the
//! wrong role, as a stranger to what it names and as its owner. An operation added without its
//! check, or documented with roles it does not enforce, fails here.

/// Every scenario of this file that runs on both topologies, listed once: `tests/taxi.rs` runs
/// them all-in-one (`contract_scenarios!(AllInOne)`), `tests/distributed.rs` on the cluster.
#[macro_export]
macro_rules! contract_scenarios {
    ($topology:ident) => {
        tests_on!($topology, contract:
            every_documented_operation_checks_who_calls,
        );
    };
}

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Api, CITY_HALL, GOOD_CARD, TestApp, Topology};

/// Who calls in the walk: for each role, the owner of the resources the calls name, and a
/// stranger with the same role.
struct Cast {
    anonymous: Api,
    alice: Api,
    mallory: Api,
    dave: Api,
    eve: Api,
    /// The values of path and query parameters: every resource is alice's or dave's.
    ids: BTreeMap<&'static str, String>,
}

/// One documented operation.
struct Operation {
    path: String,
    method: Method,
    service: String,
    /// `None`: public; otherwise the roles the document says may call (the operator among them).
    roles: Option<Vec<String>>,
    query: Vec<String>,
    body: Option<Value>,
    /// The identity fields the request body has (`customerId`, `userId`, `driverId`).
    body_identity: Vec<String>,
    streams: bool,
}

/// The fields and parameters that name whose a request is.
const IDENTITY: [&str; 4] = ["customerId", "userId", "driverId", "receiver"];

pub async fn every_documented_operation_checks_who_calls(t: Topology) {
    let app = TestApp::spawn(t).await;
    let doc = app.api.anonymous().get("/openapi.json").await.expect(200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let cast = cast(&app.api).await;
    let operations = operations(&doc);
    assert!(
        operations.len() > 40,
        "only {} operations documented",
        operations.len()
    );
    let direct = match t {
        Topology::AllInOne => None,
        Topology::Distributed => Some(&app),
    };
    for op in &operations {
        check(&cast, op).await;
        if let Some(app) = direct {
            check_direct(app, &cast, op).await;
        }
    }
    // Public reads and forms answer without credentials, and the viewer is ours, not a CDN's.
    let page = reqwest::get(format!("{}/docs", app.api.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/assets/rapidoc-") && !html.contains("https://"),
        "{html}"
    );
    app.shutdown().await;
}

/// The accounts and the resources they own.
async fn cast(operator: &Api) -> Cast {
    let alice = operator.signed_up("alice", "customer").await;
    let mallory = operator.signed_up("mallory", "customer").await;
    let dave = operator.signed_up("dave", "driver").await;
    let eve = operator.signed_up("eve", "driver").await;
    dave.register_driver("dave", CITY_HALL).await;
    dave.online("dave").await;
    operator.flight("KE1101", 10).await;
    let mut booking = Api::booking("alice", GOOD_CARD);
    booking.as_object_mut().unwrap().remove("customerId");
    // Book hears that dave is free a moment after he goes online (an event).
    let book = alice.book_with(booking).await;
    let book_id = book["bookId"].as_str().unwrap().to_owned();
    let offer = dave.offer_for("dave").await;
    let dispatch_id = offer["dispatchId"].as_str().unwrap().to_owned();
    alice
        .post("/accounts/alice/deposit", json!({"amount": 1000}))
        .await
        .expect(200);
    let reservation = alice
        .post("/reservations", json!({"flightId": "KE1101"}))
        .await
        .expect(201);
    let ids = BTreeMap::from([
        ("bookId", book_id),
        ("dispatchId", dispatch_id),
        (
            "reservationId",
            reservation["reservationId"].as_str().unwrap().to_owned(),
        ),
        ("flightId", "KE1101".to_owned()),
        ("id", "a-dead-letter".to_owned()),
        ("name", "book".to_owned()),
    ]);
    Cast {
        anonymous: operator.anonymous(),
        alice,
        mallory,
        dave,
        eve,
        ids,
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            all.push(operation(doc, path, method, op));
        }
    }
    all
}

fn operation(doc: &Value, path: &str, method: Method, op: &Value) -> Operation {
    let security = op["security"]
        .as_array()
        .expect("every operation states its security");
    let roles = security.first().map(|requirement| {
        requirement["bearer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    });
    // The required query parameters, or else the first optional one that names something (a
    // filter such as `bookId` or `driverId`: one at a time).
    let params: Vec<&Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .collect();
    let name = |p: &&Value| p["name"].as_str().unwrap().to_owned();
    let mut query: Vec<String> = params
        .iter()
        .filter(|p| p["required"] == true)
        .map(name)
        .collect();
    if query.is_empty() {
        query.extend(params.iter().map(name).find(|n| names(n)));
    }
    let content = &op["requestBody"]["content"]["application/json"];
    let body = (!content.is_null()).then(|| {
        let example = &content["example"];
        assert!(
            !example.is_null(),
            "{method} {path}: a request body without an example"
        );
        example.clone()
    });
    let body_identity = properties(doc, &content["schema"]);
    let streams = op["responses"]["200"]["content"]
        .get("text/event-stream")
        .is_some();
    Operation {
        path: path.to_owned(),
        method,
        service: op["tags"][0].as_str().unwrap().to_owned(),
        roles,
        query,
        body,
        body_identity,
        streams,
    }
}

/// Whether a parameter names whose or which resource a request is about.
fn names(parameter: &str) -> bool {
    IDENTITY.contains(&parameter) || parameter.ends_with("Id")
}

/// The identity fields among a body schema's properties (following one `$ref`).
fn properties(doc: &Value, schema: &Value) -> Vec<String> {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    IDENTITY
        .iter()
        .filter(|f| schema["properties"].get(**f).is_some())
        .map(|f| (*f).to_owned())
        .collect()
}

/// Every call of one operation through the gateway: anonymous, each role it does not grant, a
/// stranger with a role it grants, and the owner.
async fn check(cast: &Cast, op: &Operation) {
    let Some(roles) = &op.roles else {
        let answer = call(&cast.anonymous, cast, op, "alice").await;
        // (A public form may still refuse what it is sent: `invalid_credentials`, say.)
        assert!(
            !matches!(
                answer.1["code"].as_str(),
                Some("unauthenticated" | "forbidden")
            ),
            "{} {} is public, yet answered {} without credentials: {}",
            op.method,
            op.path,
            answer.0,
            answer.1
        );
        return;
    };
    let answer = call(&cast.anonymous, cast, op, "alice").await;
    assert_refused(op, "without credentials", &answer, &[401]);
    let grants = |role: &str| roles.iter().any(|r| r == role);
    let parties = [
        ("customer", &cast.alice, "alice", &cast.mallory),
        ("driver", &cast.dave, "dave", &cast.eve),
    ];
    let granted: Vec<_> = parties.iter().filter(|p| grants(p.0)).collect();
    // Named for the first role it grants (alice for an operator-only one: it names hers).
    let owner = granted.first().map_or("alice", |p| p.2);
    for (role, caller, _, _) in parties.iter().filter(|p| !grants(p.0)) {
        let answer = call(caller, cast, op, owner).await;
        assert_refused(op, &format!("as a {role}"), &answer, &[403, 404]);
    }
    for (role, caller, owner, stranger) in granted {
        if names_someone(op) {
            let answer = call(stranger, cast, op, owner).await;
            assert_refused(op, &format!("as another {role}"), &answer, &[403, 404]);
        }
        let answer = call(caller, cast, op, owner).await;
        assert!(
            !matches!(answer.0.as_u16(), 401 | 403),
            "{} {} grants {role}s, yet its owner got {}: {}",
            op.method,
            op.path,
            answer.0,
            answer.1
        );
    }
}

/// Whether the request names whose it is: a path parameter, an identity query parameter or
/// body field. (`flightId` names a flight, which is nobody's.)
fn names_someone(op: &Operation) -> bool {
    let path_names = op
        .path
        .split('/')
        .any(|s| s.starts_with('{') && s != "{flightId}");
    path_names || op.query.iter().any(|q| q != "flightId") || !op.body_identity.is_empty()
}

#[track_caller]
fn assert_refused(
    op: &Operation,
    how: &str,
    answer: &(StatusCode, Value, String),
    allowed: &[u16],
) {
    let (status, body, content_type) = answer;
    let refused = allowed.contains(&status.as_u16())
        // Someone else's list is as good as empty.
        || (status.as_u16() == 200 && body.as_array().is_some_and(Vec::is_empty) && op.method == Method::GET);
    assert!(refused, "{} {} {how}: {status} {body}", op.method, op.path);
    if status.as_u16() != 200 {
        assert_eq!(
            content_type, "application/problem+json",
            "{} {} {how}",
            op.method, op.path
        );
    }
    if status.as_u16() == 401 {
        assert_eq!(
            body["code"], "unauthenticated",
            "{} {} {how}",
            op.method, op.path
        );
    }
}

/// Calls `op` as `caller`, naming `owner`'s resources (`alice` or `dave`).
async fn call(
    caller: &Api,
    cast: &Cast,
    op: &Operation,
    owner: &str,
) -> (StatusCode, Value, String) {
    call_at(caller, &caller.base, cast, op, owner).await
}

async fn call_at(
    caller: &Api,
    base: &str,
    cast: &Cast,
    op: &Operation,
    owner: &str,
) -> (StatusCode, Value, String) {
    let value = |name: &str| -> String {
        match name {
            "customerId" | "userId" => "alice".to_owned(),
            "driverId" => "dave".to_owned(),
            "receiver" if owner == "dave" => "driver:dave".to_owned(),
            "receiver" => "customer:alice".to_owned(),
            other => cast
                .ids
                .get(other)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
        }
    };
    let mut path = op.path.clone();
    while let Some(start) = path.find('{') {
        let end = path[start..].find('}').unwrap() + start;
        let name = path[start + 1..end].to_owned();
        path.replace_range(start..=end, &value(&name));
    }
    let query: Vec<(String, String)> = op.query.iter().map(|q| (q.clone(), value(q))).collect();
    let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), &query).unwrap();
    let mut request = caller.http.request(op.method.clone(), url);
    if let Some(example) = &op.body {
        let mut body = example.clone();
        for field in &op.body_identity {
            body[field.as_str()] = json!(value(field));
        }
        request = request.json(&body);
    }
    if let Some(token) = caller.token_if_any().await {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request reaches tanda");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if op.streams && status.is_success() {
        return (status, Value::Null, content_type); // a stream never ends: its head is the answer
    }
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, content_type)
}

/// In distributed mode each service checks its callers itself: every operation, sent straight
/// to the process that owns it, is refused without credentials and with a role it does not grant.
async fn check_direct(app: &TestApp, cast: &Cast, op: &Operation) {
    let Some(roles) = &op.roles else { return };
    let service = if op.service == "operations" {
        "book"
    } else {
        op.service.as_str()
    };
    let addr = app
        .cluster_addrs()
        .get(service)
        .copied()
        .unwrap_or_else(|| panic!("no process for {service}"));
    let base = format!("http://{addr}");
    let answer = call_at(&cast.anonymous, &base, cast, op, "alice").await;
    assert_refused(
        op,
        &format!("straight to {service} without credentials"),
        &answer,
        &[401],
    );
    if !roles.iter().any(|r| r == "customer") {
        let answer = call_at(&cast.alice, &base, cast, op, "alice").await;
        assert_refused(
            op,
            &format!("straight to {service} as a customer"),
            &answer,
            &[403, 404],
        );
    }
}
