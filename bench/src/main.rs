//! `mpanel-bench`: runs every benchmark of `./scripts/bench` against the
//! local stack and rewrites `BENCHMARKS.md`. Each figure is measured beside
//! its floor in the same run (pgbench, curl + ssh, a hello-world Lambda, raw
//! Argon2id, the small tenant), because absolute times drift on a shared
//! machine.

mod coldstart;
mod growth;
mod intake;
mod load;
mod login;
mod provision;
mod report;
mod stack;
mod sweep;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(about = "mPanel benchmarks (run through ./scripts/bench)")]
struct Args {
    /// The release `mpanel` binary.
    #[arg(long)]
    mpanel: PathBuf,
    /// `cargo lambda build --lambda-dir` output: `<function>/bootstrap`.
    #[arg(long)]
    lambda_dir: PathBuf,
    /// The arm64 release build (what template.yaml deploys), for its sizes:
    /// `<function>/bootstrap`. Sizes only: this machine cannot run it.
    #[arg(long)]
    arm64_dir: Option<PathBuf>,
    /// The repository's `events/` folder.
    #[arg(long)]
    events: PathBuf,
    /// Scratch space for logs and generated files.
    #[arg(long)]
    work_dir: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    #[arg(long, default_value_t = 5000)]
    intake_orders: usize,
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    intake_concurrency: Vec<usize>,
    /// Interleaved rounds (mPanel, pgbench) per intake level; the orders of
    /// a level are split over them.
    #[arg(long, default_value_t = 3)]
    intake_rounds: usize,
    /// Orders of one mPanel provisioning round.
    #[arg(long, default_value_t = 300)]
    provision_orders: usize,
    #[arg(long, value_delimiter = ',', default_values_t = [3, 16])]
    worker_concurrency: Vec<usize>,
    /// Orders of one floor round (as many as mPanel's: the hosting server's
    /// per-site costs grow with the sites a round leaves).
    #[arg(long, default_value_t = 300)]
    floor_orders: usize,
    /// Interleaved rounds (floor, mPanel) per worker count.
    #[arg(long, default_value_t = 3)]
    provision_rounds: usize,
    /// Fixed arrival rates, as shares of the first worker count's saturation.
    #[arg(long, value_delimiter = ',', default_values_t = [0.25, 0.5, 0.8])]
    arrival_shares: Vec<f64>,
    /// Seconds of the steady window at each arrival rate.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    #[arg(long, default_value_t = 10)]
    cold_start_runs: usize,
    #[arg(long, default_value_t = 30)]
    login_runs: usize,
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 1_000_000])]
    growth_sizes: Vec<i64>,
    #[arg(long, default_value_t = 100)]
    page_runs: usize,
    /// Finished jobs of each sweep history (subscriptions: a tenth of them).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 1_000_000])]
    sweep_jobs: Vec<i64>,
    #[arg(long, default_value_t = 50)]
    sweep_runs: usize,
    /// Run only these sections (intake, provision, cold, api) and print
    /// their figures; the report is written only by a whole run.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    mpanel::tls::install_default_provider();
    let args = Args::parse();
    std::fs::create_dir_all(&args.work_dir)?;
    let base_env: stack::Env = std::env::vars().collect();
    let queue_url = stack::create_queue(&base_env).await.context("creating the benchmark's SQS queue in moto")?;
    let stack = stack::Stack { base_env, mpanel: args.mpanel.clone(), work_dir: args.work_dir.clone(), queue_url };
    let started = std::time::Instant::now();
    provision::clean_remote(&stack).await.context("cleaning earlier benchmark zones and sites")?;
    let wanted = |section: &str| args.only.is_empty() || args.only.iter().any(|s| s == section);

    let intake = match wanted("intake") {
        true => Some(
            intake::measure(&stack, args.intake_orders, &args.intake_concurrency, args.intake_rounds)
                .await
                .context("intake")?,
        ),
        false => None,
    };
    let plan = provision::Plan {
        burst_orders: args.provision_orders,
        floor_orders: args.floor_orders,
        levels: args.worker_concurrency.clone(),
        rounds: args.provision_rounds,
        shares: args.arrival_shares.clone(),
        steady: std::time::Duration::from_secs(args.steady_secs),
    };
    let provision = match wanted("provision") {
        true => Some(provision::measure(&stack, &plan).await.context("provisioning")?),
        false => None,
    };

    // Cold start, login and growth share one database and server.
    let db = stack.fresh_db("mpanel_bench_api").await?;
    let env = stack.lambda_env_for(&db);
    // Each function configured from the environment, hello-world, and each
    // again reading its secrets by ARN from Secrets Manager (moto).
    let (arn_env, secret_arns) = stack::secrets_by_arn(&env).await.context("secrets in moto")?;
    let functions = ["auth", "products", "orders", "admin", "worker", "scheduler"];
    let variant = |label: String, function: &str, env: &stack::Env| coldstart::Variant {
        label,
        function: function.into(),
        env: env.clone(),
    };
    let mut variants: Vec<coldstart::Variant> = functions.iter().map(|f| variant(f.to_string(), f, &env)).collect();
    variants.push(variant("hello-lambda".into(), "hello-lambda", &env));
    variants.push(variant("sweep-floor".into(), "sweep-floor", &env));
    variants.extend(functions.iter().map(|f| variant(format!("{f} (secrets by ARN)"), f, &arn_env)));
    let cold = match wanted("cold") {
        true => Some(
            coldstart::measure(&variants, &args.lambda_dir, &args.events, args.cold_start_runs)
                .await
                .context("cold start")?,
        ),
        false => None,
    };
    stack::delete_secrets(&stack.base_env, &secret_arns).await?;
    let mut api = None;
    if wanted("api") {
        let (server, base) = stack.serve(&stack.env_for(&db), "api-serve.log").await?;
        let login = login::measure(&db, &base, args.login_runs).await.context("login")?;
        let growth = growth::measure(&db, &base, &args.growth_sizes, args.page_runs).await.context("growth")?;
        let sweep_sizes: Vec<(i64, i64)> = args.sweep_jobs.iter().map(|&jobs| (jobs, (jobs / 10).max(1))).collect();
        let sweep =
            sweep::measure(&stack.env_for(&db), &db.url, &sweep_sizes, args.sweep_runs).await.context("sweep")?;
        stack::stop(server).await;
        api = Some((login, growth, sweep));
    }
    stack.drop_db(&db).await?;
    stack::delete_queue(&stack.base_env, &stack.queue_url).await?;

    let (Some(intake), Some(provision), Some(cold), Some((login, growth, sweep))) = (intake, provision, cold, api)
    else {
        println!("a partial run (--only): {} is left as it was", args.out.display());
        return Ok(());
    };
    let sizes = ["auth", "products", "orders", "admin", "worker", "scheduler", "migrate"]
        .iter()
        .map(|f| report::SizeRow {
            function: f.to_string(),
            x86_64: stack::file_size(&args.lambda_dir.join(f).join("bootstrap")),
            arm64: args.arm64_dir.as_ref().map(|d| stack::file_size(&d.join(f).join("bootstrap"))),
        })
        .collect();
    let report = report::Report {
        sizes,
        intake,
        intake_orders: args.intake_orders,
        provision,
        cold,
        login,
        growth,
        sweep,
        total: started.elapsed(),
    };
    std::fs::write(&args.out, report.render()?)?;
    println!("wrote {} in {:.0} s", args.out.display(), started.elapsed().as_secs_f64());
    Ok(())
}
