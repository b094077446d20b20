//! The OpenAPI document the server serves at `GET /v1/openapi.json`: it
//! parses, it is OpenAPI 3.1, and it describes every route of the route
//! table — the list kept here, and the table itself as `startup.rs` writes
//! it, so a route added without a description fails this test.

use kiemtra_server::{Application, Settings};
use serde_json::Value;
use std::collections::BTreeSet;

/// Every route of the server, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/enroll"),
    ("post", "/v1/sync"),
    ("get", "/v1/visits"),
    ("get", "/v1/visits/{id}"),
    ("get", "/v1/visits/{id}/receipts"),
    ("get", "/v1/visits/{id}/verify"),
    ("get", "/v1/campaigns/{id}/verify"),
    ("get", "/v1/campaigns/{id}/report"),
    ("get", "/v1/team/devices"),
    ("get", "/v1/visits/{id}/evidence/{hash}/status"),
    ("put", "/v1/visits/{id}/evidence/{hash}"),
    ("get", "/v1/visits/{id}/evidence/{hash}"),
    ("get", "/v1/admin/log"),
    ("post", "/v1/admin/log"),
    ("get", "/v1/admin/directory"),
    ("get", "/v1/admin/devices/check"),
    ("post", "/v1/admin/imports/{kind}"),
    ("get", "/v1/admin/export/{list}"),
];

/// The routes `startup.rs` registers: `get("/…")`, `post("/…")` and
/// `resource("/…", "GET, PUT")` in its route table.
fn route_table() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/startup.rs");
    let mut routes = BTreeSet::new();
    for (call, method) in [
        ("get(\"", Some("get")),
        ("post(\"", Some("post")),
        ("resource(\"", None),
    ] {
        for (at, _) in source.match_indices(call) {
            // Only calls, not the helpers' definitions (`fn get(path: …`).
            if source[..at].ends_with("fn ") {
                continue;
            }
            let rest = &source[at + call.len()..];
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            // The web console's pages are HTML for browsers, not the API.
            if !path.starts_with('/') || path.starts_with("/console") {
                continue;
            }
            match method {
                Some(m) => {
                    routes.insert((m.to_owned(), path.to_owned()));
                }
                None => {
                    // resource("/path", "GET, PUT")
                    let allow = rest[end + 1..]
                        .split('"')
                        .nth(1)
                        .expect("the methods a resource takes");
                    for m in allow.split(',') {
                        routes.insert((m.trim().to_ascii_lowercase(), path.to_owned()));
                    }
                }
            }
        }
    }
    routes
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_and_describes_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Application::build(Settings {
        listen: "127.0.0.1:0".into(),
        data: dir.path().to_path_buf(),
        ..Settings::default()
    })
    .expect("server");
    let url = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());

    let resp = reqwest::get(format!("{url}/v1/openapi.json"))
        .await
        .expect("GET /v1/openapi.json");
    assert_eq!(resp.status(), 200, "served without a token");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/json")
    );
    let doc: Value = resp.json().await.expect("the document is JSON");
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI {version}");
    assert!(doc["info"]["title"].is_string());

    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let table = route_table();
    assert_eq!(
        table, listed,
        "the route table in startup.rs and the list in this test differ: a new route needs \
         its #[utoipa::path] description, a place in ApiDoc's paths and a line here"
    );
    assert_eq!(described, listed, "the document and the route table differ");

    // Every operation has a summary, its answers, and problem+json errors;
    // those that need a token say so.
    for (method, path) in &listed {
        let op = &doc["paths"][path][method];
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success answer"
        );
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"].as_object().expect("error content");
                assert!(
                    content.contains_key("application/problem+json")
                        || (path == "/healthz" && status == "503"),
                    "{method} {path} {status}: not problem+json"
                );
            }
        }
        let public = ["/healthz", "/metrics", "/v1/openapi.json", "/v1/enroll"];
        if !public.contains(&path.as_str()) {
            assert!(
                responses.contains_key("401"),
                "{method} {path}: needs a token, says no 401"
            );
            assert_ne!(
                op["security"],
                serde_json::json!([{}]),
                "{method} {path}: needs a token"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(
        doc["components"]["schemas"]["Problem"]["properties"]["type"].is_object(),
        "the problem schema"
    );
    // Every reference names a schema the document holds.
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the schemas: {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not in the document"
        );
    }
}

fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}
