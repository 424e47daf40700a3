//! `template.yaml` and the code agree: every route the code serves is wired
//! to the function that serves it, every wired route exists in that
//! function, and every function crate is deployed with an event.

use std::collections::BTreeMap;
use std::path::Path;

use mpanel::Function;
use mpanel::http::routes::RouteSpec;
use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, Clone)]
struct WiredRoute {
    api: String,
    method: String,
    path: String,
    function: String,
}

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml");
    YamlLoader::load_from_str(&text).expect("valid YAML").remove(0)
}

/// Logical id → binary name, for every function resource.
fn functions(t: &Yaml) -> BTreeMap<String, (String, Vec<Yaml>)> {
    let mut out = BTreeMap::new();
    for (id, resource) in t["Resources"].as_hash().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().expect("id").to_string();
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                // Container-image functions: functions/<name>/Dockerfile.
                resource["Metadata"]["Dockerfile"].as_str().and_then(|d| d.split('/').nth(1)).map(str::to_string)
            })
            .unwrap_or_else(|| panic!("{id}: no Binary or Dockerfile"));
        let events =
            resource["Properties"]["Events"].as_hash().map(|h| h.values().cloned().collect()).unwrap_or_default();
        out.insert(id, (binary, events));
    }
    out
}

fn wired_routes(t: &Yaml) -> Vec<WiredRoute> {
    let mut out = Vec::new();
    for (binary, events) in functions(t).values() {
        for event in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            out.push(WiredRoute {
                api: p["ApiId"].as_str().expect("ApiId").to_string(),
                method: p["Method"].as_str().expect("Method").to_ascii_uppercase(),
                path: p["Path"].as_str().expect("Path").to_string(),
                function: binary.clone(),
            });
        }
    }
    out
}

/// How specifically a wired path matches a code path (API Gateway picks
/// the most specific): exact 3, greedy `{proxy+}` 2, `$default` 1.
fn specificity(wired: &str, code: &str) -> Option<u8> {
    if wired == "$default" {
        return Some(1);
    }
    if wired == code {
        return Some(3);
    }
    let prefix = wired.strip_suffix("{proxy+}")?;
    (code.starts_with(prefix) && code.len() > prefix.len()).then_some(2)
}

/// The function an API sends `method path` to, if any.
fn resolve<'a>(routes: &'a [WiredRoute], api: &str, method: &str, path: &str) -> Option<&'a WiredRoute> {
    routes
        .iter()
        .filter(|r| r.api == api && (r.method == "ANY" || r.method == method))
        .filter_map(|r| specificity(&r.path, path).map(|s| (s + u8::from(r.method != "ANY"), r)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, r)| r)
}

fn code_routes() -> Vec<(String, RouteSpec)> {
    let mut out = Vec::new();
    for function in Function::ALL {
        let routes = mpanel::app::common_routes().merge(function.routes());
        for spec in routes.specs() {
            out.push((function.name().to_string(), spec.clone()));
        }
    }
    out
}

#[test]
fn every_code_route_is_wired_to_its_function() {
    let wired = wired_routes(&template());
    let apis: Vec<String> = {
        let mut a: Vec<String> = wired.iter().map(|r| r.api.clone()).collect();
        a.sort();
        a.dedup();
        a
    };
    assert_eq!(apis, ["AdminApi", "MarketingApi"]);
    let common = mpanel::app::common_routes().specs().to_vec();
    let mut missing = Vec::new();
    for (function, spec) in code_routes() {
        let served_somewhere = apis
            .iter()
            .any(|api| resolve(&wired, api, spec.method.as_str(), spec.path).is_some_and(|r| r.function == function));
        // Health and the OpenAPI document are served by every function; each API must reach one.
        if common.contains(&spec) {
            for api in &apis {
                assert!(resolve(&wired, api, "GET", spec.path).is_some(), "{api} has no route to {}", spec.path);
            }
            continue;
        }
        if !served_somewhere {
            missing.push(format!("{} {} → {function}", spec.method, spec.path));
        }
    }
    assert!(missing.is_empty(), "routes not wired to their function in template.yaml: {missing:#?}");
}

#[test]
fn every_wired_route_exists_in_its_function() {
    let code = code_routes();
    for route in wired_routes(&template()) {
        if route.path == "$default" {
            continue;
        }
        let exists = code.iter().any(|(function, spec)| {
            *function == route.function
                && (route.method == "ANY" || route.method == spec.method.as_str())
                && specificity(&route.path, spec.path).is_some()
        });
        assert!(exists, "{} {} {} → {} serves nothing there", route.api, route.method, route.path, route.function);
    }
}

#[test]
fn every_function_crate_is_deployed_with_an_event() {
    let deployed = functions(&template());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    for entry in std::fs::read_dir(&dir).expect("functions/") {
        let name = entry.expect("entry").file_name().to_string_lossy().to_string();
        let (id, (_, events)) = deployed
            .iter()
            .find(|(_, (binary, _))| *binary == name)
            .unwrap_or_else(|| panic!("functions/{name} has no resource in template.yaml"));
        // The migrate function's trigger is the stack's own custom resource.
        let invoked_by_a_resource = template()["Resources"]
            .as_hash()
            .expect("Resources")
            .values()
            // `!GetAtt Id.Arn` reads as the plain string `Id.Arn`.
            .any(|r| r["Properties"]["ServiceToken"].as_str().and_then(|t| t.split('.').next()) == Some(id.as_str()));
        assert!(!events.is_empty() || invoked_by_a_resource, "{name} has no event");
    }
}
