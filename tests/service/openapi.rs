//! `docs/openapi.json` against the router: every route served is
//! described (and nothing else), and every JSON example parses as the
//! wire type its schema names.

use std::collections::BTreeSet;

use batch_export::wire::{ErrorBody, ListBody, StatusBody};

use super::*;

fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn openapi_describes_every_route_of_the_router_and_no_other() {
    let doc = openapi();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let served: BTreeSet<(String, String)> = http::endpoints()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_lowercase(), path.to_owned()))
        .collect();
    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect();
    assert_eq!(served, described);
}

/// Checks that `example` parses as the wire type of schema `name`.
fn parses_as(name: &str, example: &Value) {
    let text = example.to_string();
    let parsed = match name {
        "StatusBody" => serde_json::from_str::<StatusBody>(&text).map(drop),
        "ListBody" => serde_json::from_str::<ListBody>(&text).map(drop),
        "ErrorBody" => serde_json::from_str::<ErrorBody>(&text).map(drop),
        other => panic!("no wire type for schema {other}"),
    };
    parsed.unwrap_or_else(|e| panic!("{name} example {text}: {e}"));
}

#[test]
fn openapi_examples_parse_as_the_wire_types() {
    let doc = openapi();
    let mut checked = 0;
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for example in schema["x-examples"].as_array().into_iter().flatten() {
            parses_as(name, example);
            checked += 1;
        }
    }
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for response in responses.values() {
                let json = &response["content"]["application/json"];
                let Some(reference) = json["schema"]["$ref"].as_str() else {
                    continue;
                };
                let name = reference.rsplit('/').next().unwrap();
                parses_as(name, &json["example"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} examples checked");
}
