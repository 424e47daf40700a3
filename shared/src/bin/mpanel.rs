use clap::Parser;

#[tokio::main]
async fn main() {
    mpanel::telemetry::init();
    let cli = mpanel::cli::Cli::parse();
    if let Err(err) = mpanel::cli::run(cli, &mpanel::config::process_env()).await {
        // One line with the whole cause chain, and a failing exit status.
        eprintln!("mpanel: error: {err:#}");
        std::process::exit(1);
    }
}
