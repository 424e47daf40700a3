//! The deployed form under the SAM CLI itself. `sam build WorkerFunction`
//! builds the worker's image from its Dockerfile; `sam local invoke` runs
//! every function in Docker (the release binaries, the Lambda base image
//! stand-in that ./scripts/stack builds, the emulator SAM ships) with only
//! the environment template.yaml declares: the local values through
//! `--env-vars`, every secret from moto's Secrets Manager by ARN, in the
//! shape the template creates or documents. Containers use the host's
//! network (scripts/sam-local), so they reach nothing but this machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpanel::auth::Role;
use mpanel::config::Env;
use mpanel::types::Named;
use mpanel_tests::{TestApp, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repo root")
}

fn cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("mpanel")
}

fn python() -> PathBuf {
    let venv = std::env::var("MPANEL_VENV").expect("MPANEL_VENV: run `./scripts/stack up && . .stack/env`");
    Path::new(&venv).join("bin/python")
}

struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `scripts/<script>` with the SAM CLI's Python; `user` runs the
/// Lambda containers as that uid:gid.
async fn sam(script: &str, args: &[&str], user: Option<&str>) -> Ran {
    let mut command = tokio::process::Command::new(python());
    command.arg(root().join("scripts").join(script)).args(args).current_dir(root()).kill_on_drop(true);
    command.env("SAM_CLI_TELEMETRY", "0").env_remove("MPANEL_SAM_LOCAL_USER");
    if let Some(user) = user {
        command.env("MPANEL_SAM_LOCAL_USER", user);
    }
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} {args:?}: no answer within 600 s"))
        .expect("the SAM CLI's Python runs");
    Ran {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What the template creates or documents, in moto.
async fn create_secrets(app: &TestApp, jwt_secret: &str) -> HashMap<&'static str, String> {
    let env = &app.env;
    let database: tokio_postgres::Config = env["DATABASE_URL"].parse().expect("DATABASE_URL");
    // DatabaseSecretArn: an RDS-managed secret holds the credentials only.
    let rds = json!({
        "username": database.get_user().expect("user"),
        "password": String::from_utf8_lossy(database.get_password().expect("password")),
    });
    let ssh_key = std::fs::read_to_string(&env["SSH_PRIVATE_KEY_FILE"]).expect("the stack's SSH key");
    let secrets = [
        ("DATABASE_URL_ARN", rds.to_string()),
        ("JWT_SECRET_ARN", jwt_secret.to_string()),
        ("MARKETING_WEBHOOK_SECRET_ARN", env["MARKETING_WEBHOOK_SECRET"].clone()),
        ("PDNS_API_KEY_ARN", env["PDNS_API_KEY"].clone()),
        ("SSH_PRIVATE_KEY_ARN", ssh_key),
    ];
    let mut arns = HashMap::new();
    for (variable, value) in secrets {
        arns.insert(variable, mpanel_tests::put_secret(env, &value).await);
    }
    arns
}

/// The JWT secret as the template's `GenerateSecretString` makes it: 64
/// characters, no punctuation.
fn generated_jwt_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

struct Rehearsal {
    app: TestApp,
    /// The app's env with the JWT secret the functions read from moto.
    render_env: Env,
    dir: PathBuf,
    template: PathBuf,
    env_vars: PathBuf,
    users: HashMap<&'static str, mpanel_tests::TestUser>,
    response_url: String,
}

/// A database with tenant `acme` (a user of every role, `starter-monthly`),
/// the secrets, the env-vars file and the template `sam build` would leave.
async fn rehearsal() -> Rehearsal {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"emails": 1}), 999).await;
    let mut users = HashMap::new();
    for &role in Role::all() {
        users.insert(role.as_str(), app.create_user(tenant, role).await);
    }
    // The tenant's SSH key where the functions keep it in AWS: a secret
    // under the stage's prefix (made as GET /api/ssh-key makes it there),
    // then installed on the local sshd like any tenant key.
    let key_prefix = format!("mpanel/rehearsal-{}/tenant-ssh/", Uuid::new_v4().simple());
    let in_aws = app
        .state_with(|env| {
            env.remove("SSH_KEY_DIR");
            env.insert("SSH_KEY_SECRET_PREFIX".into(), key_prefix.clone());
        })
        .await;
    let keys = in_aws.tenant_keys.as_deref().expect("Secrets Manager key store");
    keys.public_key(&in_aws.db, tenant).await.expect("the tenant's key in moto");
    app.local_web_server(tenant, None).await;

    let jwt_secret = generated_jwt_secret();
    let arns = create_secrets(&app, &jwt_secret).await;
    let mut render_env = app.env.clone();
    render_env.insert("JWT_SECRET".into(), jwt_secret);

    let dir = root().join(".stack/sam-local").join(Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).expect("scratch dir");
    // Every variable template.yaml declares that has no usable value here.
    // SAM passes only declared variables: one the code needs but the
    // template lacks never reaches the function, and its invoke fails.
    let env = &app.env;
    let (host, port) = mpanel_tests::host_and_port(&env["DATABASE_URL"]);
    let mut parameters = json!({
        "DATABASE_HOST": host,
        "DATABASE_PORT": port.to_string(),
        "DATABASE_NAME": app.db_name,
        "REDIS_URL": env["REDIS_URL"],
        "SQS_QUEUE_URL": env["SQS_QUEUE_URL"],
        "PDNS_API_URL": env["PDNS_API_URL"],
        "PDNS_SERVER_ID": env["PDNS_SERVER_ID"],
        "PDNS_NAMESERVERS": env["PDNS_NAMESERVERS"],
        "AWS_ENDPOINT_URL": env["AWS_ENDPOINT_URL"],
        "SSH_KEY_SECRET_PREFIX": key_prefix,
    });
    for (variable, arn) in arns {
        parameters[variable] = json!(arn);
    }
    let env_vars = dir.join("env-vars.json");
    std::fs::write(&env_vars, json!({ "Parameters": parameters }).to_string()).expect("env vars");

    let built = build_worker_image(&dir).await;
    let template = dir.join("template.yaml");
    let binaries = cache().join("lambda-x86");
    let made = sam(
        "sam-local-template",
        &[
            "--binaries",
            binaries.to_str().expect("utf-8"),
            "--built",
            built.to_str().expect("utf-8"),
            "--out",
            template.to_str().expect("utf-8"),
        ],
        None,
    )
    .await;
    assert!(made.success, "sam-local-template: {}{}", made.stdout, made.stderr);
    let response_url = mpanel_tests::events::cloudformation_stand_in().await;
    Rehearsal { app, render_env, dir, template, env_vars, users, response_url }
}

/// `sam build WorkerFunction` from functions/worker/Dockerfile, for x86_64
/// (the stand-in base image is x86_64); returns the template it wrote.
async fn build_worker_image(dir: &Path) -> PathBuf {
    let stamp = std::fs::read_to_string(root().join("build/worker/stamp"))
        .expect("build/worker/stamp: run ./scripts/worker-binary --arch x86_64 (./scripts/test does)");
    assert!(stamp.contains("arch=x86_64"), "build/worker holds {stamp}: run ./scripts/worker-binary --arch x86_64");
    let build_dir = dir.join("build");
    let built = sam(
        "sam-local",
        &[
            "build",
            "WorkerFunction",
            "--template-file",
            root().join("template.yaml").to_str().expect("utf-8"),
            "--build-dir",
            build_dir.to_str().expect("utf-8"),
            "--parameter-overrides",
            "Architecture=x86_64",
        ],
        None,
    )
    .await;
    assert!(built.success, "sam build WorkerFunction failed:\n{}{}", built.stdout, built.stderr);
    build_dir.join("template.yaml")
}

impl Rehearsal {
    /// `mpanel event render` of `events/<function>/<file>`, with the
    /// logins of this tenant's users and the CloudFormation stand-in.
    async fn render(&self, function: &str, file: &str) -> PathBuf {
        let raw = std::fs::read_to_string(root().join("events").join(function).join(file)).expect("sample event");
        let mut set = vec![format!("responseUrl={}", self.response_url)];
        for (role, user) in &self.users {
            set.push(format!("email:{role}={}", user.email));
            set.push(format!("password:{role}={}", user.password));
        }
        let rendered = mpanel::cli::render_event(&self.render_env, &raw, "acme", &set).await.expect("event renders");
        let path = self.dir.join(format!("{function}-{file}"));
        std::fs::write(&path, rendered).expect("write event");
        path
    }

    /// `sam local invoke` of one function with one event; the function's
    /// answer. SAM exits 0 even when the function failed: that shows as an
    /// answer that is not the function's.
    async fn invoke(&self, logical_id: &str, event: &Path, user: Option<&str>) -> Value {
        let ran = sam(
            "sam-local",
            &[
                "local",
                "invoke",
                logical_id,
                "--template",
                self.template.to_str().expect("utf-8"),
                "--event",
                event.to_str().expect("utf-8"),
                "--env-vars",
                self.env_vars.to_str().expect("utf-8"),
                "--parameter-overrides",
                "Architecture=x86_64 AwsEndpointUrl=http://127.0.0.1:5000 Stage=local",
                "--skip-pull-image",
                "--region",
                "us-east-1",
            ],
            user,
        )
        .await;
        let label = format!("{logical_id} {}", event.display());
        assert!(ran.success, "{label}: sam local invoke failed:\n{}{}", ran.stdout, ran.stderr);
        let answer: Value = serde_json::from_str(ran.stdout.trim())
            .unwrap_or_else(|e| panic!("{label}: no JSON answer ({e}):\n{}\n{}", ran.stdout, ran.stderr));
        assert!(answer.get("errorType").is_none(), "{label}: the function failed: {answer}\n{}", ran.stderr);
        assert!(ran.stderr.contains("END RequestId"), "{label}: the invocation did not end:\n{}", ran.stderr);
        answer
    }
}

/// (function folder, logical id, events): an allowed and a refused one per
/// HTTP function, the worker's sample batch, the schedule, the deploy's
/// custom resource.
const EVENTS: [(&str, &str, &[&str]); 7] = [
    ("auth", "AuthFunction", &["login.200.json", "me-anonymous.401.json"]),
    ("products", "ProductsFunction", &["list.200.json", "create-read-only.403.json"]),
    ("orders", "OrdersFunction", &["webhook.201.json", "webhook-unsigned.401.json"]),
    ("admin", "AdminFunction", &["users-list.200.json", "users-list-refused.403.json"]),
    ("worker", "WorkerFunction", &["jobs-batch.failures-1.json"]),
    ("scheduler", "SchedulerFunction", &["scheduled-event.ok.json"]),
    ("migrate", "MigrateFunction", &["create.SUCCESS.json"]),
];

#[tokio::test]
async fn every_function_answers_under_sam_local_invoke_and_the_worker_image_provisions() {
    let r = rehearsal().await;
    for (function, logical_id, files) in EVENTS {
        for file in files {
            let event = r.render(function, file).await;
            let answer = r.invoke(logical_id, &event, None).await;
            mpanel_tests::events::assert_expected(function, Path::new(file), &answer);
        }
    }
    // The order the orders function took under SAM is in this test's database.
    assert_eq!(r.app.count("orders WHERE external_order_id = 'event-order-1'").await, 1);

    // A real order's jobs through the worker's image, run as a uid with no
    // passwd entry (as Lambda runs images): DNS in PowerDNS, the site over SSH.
    let domain = mpanel_tests::unique_domain();
    let order = json!({
        "tenantSlug": "acme", "externalOrderId": format!("sam-{}", Uuid::new_v4().simple()),
        "customer": {"email": "sam@example.org", "fullName": "Sam Local"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": domain,
    });
    let created = r.app.request(r.app.signed_order("sam-local-order", &order)).await;
    assert_eq!(created.status, http::StatusCode::CREATED, "{}", created.json());
    let subscription: Uuid = r
        .app
        .db()
        .await
        .query_one(
            "SELECT s.id FROM subscriptions s JOIN domains d ON d.subscription_id = s.id WHERE d.name = $1",
            &[&domain],
        )
        .await
        .expect("the order's subscription")
        .get(0);
    let jobs = r.app.jobs_of(subscription).await;
    assert!(jobs.len() >= 2, "{jobs:?}");
    let records: Vec<Value> = jobs
        .chunks(2)
        .map(|ids| {
            let ids: Vec<String> = ids.iter().map(|(id, _)| id.to_string()).collect();
            json!({
                "messageId": Uuid::new_v4().to_string(), "receiptHandle": "sam-local",
                "body": json!({"jobIds": ids}).to_string(), "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mpanel-jobs", "awsRegion": "us-east-1",
            })
        })
        .collect();
    let batch = r.dir.join("worker-real-batch.json");
    std::fs::write(&batch, json!({ "Records": records }).to_string()).expect("batch");
    let answer = r.invoke("WorkerFunction", &batch, Some("12345:12345")).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    for (id, kind) in &jobs {
        assert_eq!(r.app.job_status(*id).await, "SUCCEEDED", "{kind} job {id}");
    }
    assert_eq!(r.app.subscription_status(subscription).await, "ACTIVE");
    assert_eq!(mpanel_tests::dig(&r.app.env, &domain, "A"), ["127.0.0.1"]);
    let site = Path::new(&r.app.env["MPANEL_TEST_WEB_ROOT"]).join(&domain).join("public/index.html");
    assert!(site.is_file(), "{} missing", site.display());

    let _ = std::fs::remove_dir_all(&r.dir);
}

/// A scratch Docker context holding the worker's Dockerfile and scripts,
/// a `.git` whose HEAD is `head`, and a "binary" stamped with `stamped`.
fn image_context(head: &str, stamped: &str, tamper: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mpanel-image-{}", Uuid::new_v4().simple()));
    for sub in ["build/worker", "functions/worker", ".git/refs/heads"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dirs");
    }
    for file in [
        ".dockerignore",
        "functions/worker/Dockerfile",
        "functions/worker/check-stamp.sh",
        "functions/worker/lambda-user.sh",
    ] {
        std::fs::copy(root().join(file), dir.join(file)).expect("copy");
    }
    std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    std::fs::write(dir.join(".git/refs/heads/main"), format!("{head}\n")).expect("ref");
    let binary = b"#!/bin/sh\necho worker\n";
    std::fs::write(dir.join("build/worker/bootstrap"), binary).expect("binary");
    let sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(binary))
    };
    std::fs::write(dir.join("build/worker/stamp"), format!("commit={stamped}\nsha256={sum}\narch=x86_64\n"))
        .expect("stamp");
    if tamper {
        std::fs::write(dir.join("build/worker/bootstrap"), b"#!/bin/sh\necho other\n").expect("tamper");
    }
    dir
}

async fn docker_build(context: &Path, tag: &str) -> Ran {
    let output = tokio::process::Command::new("docker")
        .args(["build", "--rm", "-t", tag, "-f", "functions/worker/Dockerfile", "."])
        .current_dir(context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .await
        .expect("docker runs");
    Ran {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_worker_image_refuses_a_binary_not_built_from_the_commit_checked_out() {
    let head = "1111111111111111111111111111111111111111";
    let other = "2222222222222222222222222222222222222222";

    let tag = format!("mpanel-image-check:{}", Uuid::new_v4().simple());
    let matching = image_context(head, head, false);
    let built = docker_build(&matching, &tag).await;
    assert!(built.success, "a binary of HEAD builds: {}{}", built.stdout, built.stderr);
    let _ = tokio::process::Command::new("docker").args(["rmi", "-f", &tag]).output().await;

    let stale = image_context(head, other, false);
    let refused = docker_build(&stale, &tag).await;
    assert!(!refused.success, "a binary of another commit must not build");
    assert!(refused.stderr.contains("not from HEAD") || refused.stdout.contains("not from HEAD"), "{}", refused.stderr);

    let edited = image_context(head, head, true);
    let refused = docker_build(&edited, &tag).await;
    assert!(!refused.success, "a binary changed after its build must not build");
    assert!(
        refused.stdout.contains("not the binary") || refused.stderr.contains("not the binary"),
        "{}",
        refused.stderr
    );

    for dir in [matching, stale, edited] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
