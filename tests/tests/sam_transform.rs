//! `template.yaml` through the SAM transform CloudFormation applies
//! (aws-sam-translator), for every stage of samconfig.toml with a complete
//! parameter set, then cfn-lint on what it produced; and the deployment
//! facts a review asked for, checked on the transformed resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("MPANEL_VENV").expect("MPANEL_VENV: run `./scripts/stack up && . .stack/env`");
    Path::new(&venv).join("bin").join(name)
}

fn run_transform(template: Option<&Path>, out: &Path) -> std::process::Output {
    let mut command = Command::new(venv_bin("python"));
    command.arg(root().join("scripts/sam-transform")).arg(out);
    if let Some(t) = template {
        command.env("SAM_TEMPLATE", t);
    }
    command.output().expect("run scripts/sam-transform")
}

/// Stage name → transformed template, every stage transformed and linted once.
fn transformed() -> &'static BTreeMap<String, Value> {
    static ONCE: std::sync::OnceLock<BTreeMap<String, Value>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("mpanel-sam-{}", uuid::Uuid::new_v4().simple()));
        let output = run_transform(None, &out);
        assert!(
            output.status.success(),
            "the SAM transform failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut stages = BTreeMap::new();
        for entry in std::fs::read_dir(&out).expect("out dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
            if let Some(stage) = name.strip_suffix(".json").filter(|s| !s.ends_with(".parameters")) {
                let lint = Command::new(venv_bin("cfn-lint")).arg(&path).output().expect("run cfn-lint");
                assert!(
                    lint.status.success(),
                    "cfn-lint on the transformed {stage} template:\n{}",
                    String::from_utf8_lossy(&lint.stdout)
                );
                let text = std::fs::read_to_string(&path).expect("read");
                stages.insert(stage.to_string(), serde_json::from_str(&text).expect("JSON"));
            }
        }
        let _ = std::fs::remove_dir_all(&out);
        stages
    })
}

fn resources<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(r.is_object(), "no resource {id}");
    r
}

#[test]
fn every_stage_transforms_and_lints_clean() {
    let stages = transformed();
    let names: Vec<&String> = stages.keys().collect();
    assert_eq!(names, ["dev", "prod"], "every samconfig.toml stage is rehearsed");
    for (stage, t) in stages {
        assert_eq!(resources(t, "AWS::Lambda::Function").len(), 7, "{stage}");
        assert!(t["Transform"].is_null(), "{stage}: the transform left itself in place");
    }
}

#[test]
fn a_template_the_transform_rejects_fails_the_rehearsal() {
    // What review found: Globals' Runtime/Handler reaching the image function.
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template");
    let broken = text.replacen("Globals:\n  Function:\n", "Globals:\n  Function:\n    Runtime: provided.al2023\n", 1);
    assert_ne!(broken, text);
    let dir = std::env::temp_dir().join(format!("mpanel-sam-bad-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("template.yaml");
    std::fs::write(&path, broken).expect("write");
    let output = run_transform(Some(&path), &dir.join("out"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WorkerFunction") && stderr.contains("Image"), "{stderr}");
}

#[test]
fn schedules_are_named_per_stage_and_never_retried() {
    let mut names = Vec::new();
    for (stage, t) in transformed() {
        let schedules = resources(t, "AWS::Scheduler::Schedule");
        assert_eq!(schedules.len(), 1, "{stage}");
        let (_, schedule) = schedules[0];
        let name = &schedule["Properties"]["Name"];
        assert!(name.to_string().contains("Stage"), "{stage}: the name must depend on the stage: {name}");
        names.push(name.to_string());
        assert_eq!(schedule["Properties"]["Target"]["RetryPolicy"]["MaximumRetryAttempts"], 0, "{stage}");
        let invoke_configs = resources(t, "AWS::Lambda::EventInvokeConfig");
        assert!(
            invoke_configs.iter().any(|(_, c)| c["Properties"]["FunctionName"]["Ref"] == "SchedulerFunction"
                && c["Properties"]["MaximumRetryAttempts"] == 0),
            "{stage}: the scheduler's async invocations are retried"
        );
    }
}

#[test]
fn worker_concurrency_is_a_parameter_and_the_queue_has_a_ceiling() {
    for (stage, t) in transformed() {
        assert!(t["Parameters"]["WorkerReservedConcurrency"].is_object(), "{stage}");
        let worker = resource(t, "WorkerFunction");
        let reserved = &worker["Properties"]["ReservedConcurrentExecutions"];
        assert_eq!(reserved["Fn::If"][1]["Ref"], "WorkerReservedConcurrency", "{stage}: {reserved}");
        let mappings = resources(t, "AWS::Lambda::EventSourceMapping");
        assert_eq!(mappings.len(), 1, "{stage}");
        let scaling = &mappings[0].1["Properties"]["ScalingConfig"]["MaximumConcurrency"];
        assert_eq!(scaling["Ref"], "WorkerMaxConcurrency", "{stage}");
        assert_eq!(mappings[0].1["Properties"]["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    }
}

#[test]
fn every_log_group_has_a_retention_and_every_function_and_api_logs_to_one() {
    for (stage, t) in transformed() {
        let groups = resources(t, "AWS::Logs::LogGroup");
        for (id, group) in &groups {
            assert!(group["Properties"]["RetentionInDays"].is_object(), "{stage}: {id} keeps logs forever");
        }
        let ids: Vec<&str> = groups.iter().map(|(id, _)| *id).collect();
        for (id, function) in resources(t, "AWS::Lambda::Function") {
            let group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"].as_str().unwrap_or_default();
            assert!(ids.contains(&group), "{stage}: {id} logs to an unmanaged group");
            assert_eq!(function["Properties"]["LoggingConfig"]["LogFormat"], "JSON", "{stage}: {id}");
        }
        let stages = resources(t, "AWS::ApiGatewayV2::Stage");
        assert_eq!(stages.len(), 2, "{stage}");
        for (id, api_stage) in stages {
            let settings = &api_stage["Properties"]["AccessLogSettings"];
            assert!(settings["DestinationArn"].is_object(), "{stage}: {id} has no access log");
            assert!(settings["Format"].as_str().is_some_and(|f| f.contains("$context.requestId")), "{stage}: {id}");
        }
    }
}

#[test]
fn alarms_cover_5xx_throttles_p99_queue_age_and_a_stopped_scheduler() {
    for (stage, t) in transformed() {
        let alarms: Vec<&Value> = resources(t, "AWS::CloudWatch::Alarm").into_iter().map(|(_, a)| a).collect();
        let text: Vec<String> = alarms.iter().map(|a| a.to_string()).collect();
        let has = |needle: &str| text.iter().any(|a| a.contains(needle));
        for api in ["MarketingApi", "AdminApi"] {
            assert!(
                alarms.iter().any(|a| a["Properties"]["MetricName"] == "5xx"
                    && a["Properties"]["Dimensions"][0]["Value"]["Ref"] == api),
                "{stage}: no 5xx alarm on {api}"
            );
        }
        assert!(has("\"Throttles\""), "{stage}: no throttle alarm");
        assert!(has("\"p99\""), "{stage}: no p99 duration alarm");
        assert!(has("ApproximateAgeOfOldestMessage"), "{stage}: no queue age alarm");
        assert!(
            alarms.iter().any(|a| a["Properties"]["MetricName"] == "Invocations"
                && a["Properties"]["TreatMissingData"] == "breaching"
                && a["Properties"]["Dimensions"][0]["Value"]["Ref"] == "SchedulerFunction"),
            "{stage}: nothing notices a scheduler that stopped"
        );
        // Every function serving traffic is watched (a failed migration fails the deploy itself).
        for function in resources(t, "AWS::Lambda::Function").into_iter().map(|(id, _)| id) {
            if function == "MigrateFunction" {
                continue;
            }
            assert!(has(&format!("{{\"Ref\":\"{function}\"}}")), "{stage}: {function} has no alarm");
        }
    }
}

#[test]
fn http_functions_time_out_their_requests_before_lambda_kills_them() {
    for (stage, t) in transformed() {
        let mut http_functions = 0;
        for (id, function) in resources(t, "AWS::Lambda::Function") {
            let serves_http = resources(t, "AWS::Lambda::Permission").iter().any(|(_, p)| {
                p["Properties"]["FunctionName"]["Ref"] == id
                    && p["Properties"]["Principal"] == "apigateway.amazonaws.com"
            });
            if !serves_http {
                continue;
            }
            http_functions += 1;
            let timeout = function["Properties"]["Timeout"].as_u64().expect("Timeout");
            let request: u64 = function["Properties"]["Environment"]["Variables"]["REQUEST_TIMEOUT_SECS"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{stage}: {id} has no REQUEST_TIMEOUT_SECS"));
            assert!(request < timeout, "{stage}: {id} answers after {request} s but is killed at {timeout} s");
        }
        assert_eq!(http_functions, 4, "{stage}");
    }
}

#[test]
fn migrations_run_on_every_deploy_before_the_functions_that_need_them() {
    for (stage, t) in transformed() {
        let migrations = resource(t, "Migrations");
        assert_eq!(migrations["Type"], "Custom::Migrations", "{stage}");
        let properties = &migrations["Properties"];
        assert_eq!(properties["ServiceToken"]["Fn::GetAtt"][0], "MigrateFunction", "{stage}");
        assert_eq!(properties["DeployId"]["Ref"], "DeployId", "{stage}: a redeploy would not migrate");
        assert!(properties["CodeVersion"].is_object(), "{stage}: new migrations would not migrate");
        for (id, function) in resources(t, "AWS::Lambda::Function") {
            if id == "MigrateFunction" {
                continue;
            }
            let depends = function["DependsOn"].to_string();
            assert!(depends.contains("\"Migrations\""), "{stage}: {id} may be updated before the schema: {depends}");
        }
    }
}

#[test]
fn functions_deploy_arm64_unless_overridden_and_reach_aws_itself_unless_rehearsing() {
    for (stage, t) in transformed() {
        assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64", "{stage}");
        assert_eq!(t["Parameters"]["AwsEndpointUrl"]["Default"], "", "{stage}");
        for (id, function) in resources(t, "AWS::Lambda::Function") {
            let properties = &function["Properties"];
            assert_eq!(properties["Architectures"], serde_json::json!([{"Ref": "Architecture"}]), "{stage} {id}");
            // Only with an emulator's endpoint set: an empty AWS_ENDPOINT_URL
            // is not a URL, and the AWS SDK would warn at every start.
            let endpoint = &properties["Environment"]["Variables"]["AWS_ENDPOINT_URL"];
            assert_eq!(
                endpoint,
                &serde_json::json!({"Fn::If": ["UsesAwsEmulator", {"Ref": "AwsEndpointUrl"}, {"Ref": "AWS::NoValue"}]}),
                "{stage} {id}"
            );
        }
    }
}
