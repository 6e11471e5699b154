//! `tayori`: see `tayori --help`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tayori::cli::{Cli, Command, ConfigCommand, DlqCommand};
use tayori::config::WorkerConfig;
use tayori::{dev, telemetry, worker};
use tayori_postgres::{PostgresConfig, PostgresStore};

/// mimalloc rather than glibc's malloc: allocation was about a fifth of the worker's CPU, and
/// mimalloc cut the worker's CPU per event by about a fifth. With its arenas committed on demand
/// (`MIMALLOC_ARENA_EAGER_COMMIT=0`, set by the container image) it holds no more resident
/// memory than glibc did (`docs/benchmarks.md`, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init(cli.log_format);
    let code = match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => {
            let app = dev::start(dev::DevConfig::from(args)).await?;
            println!("{}", app.banner());
            app.run_until_signal().await
        }
        Command::Migrate(args) => {
            let store = PostgresStore::connect(&PostgresConfig::new(&args.database_url))
                .await
                .context("cannot connect to the database given by --database-url")?;
            store.migrate().await.context("migrations failed")?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Prune(args) => tayori::prune_cmd::run(args).await,
        Command::Worker(args) => {
            #[cfg(feature = "failpoints")]
            tayori::failpoints::arm_from_env()?;
            let config = WorkerConfig::load(args.config.as_deref())?;
            let report = worker::start(config).await?.run_until_signal().await?;
            eprintln!(
                "stopped: {} received, {} deleted, {} left for retry, {} released unstarted, \
                 {} abandoned at the deadline",
                report.received,
                report.deleted,
                report.backed_off,
                report.released_unstarted,
                report.abandoned
            );
            Ok(())
        }
        Command::Dlq(DlqCommand::Redrive(args)) => {
            let sqs = aws_sdk_sqs::Client::new(&worker::aws_config().await);
            let from = match args.from {
                Some(from) => from,
                None => tayori_sqs::SqsDeadLetters::new(sqs.clone(), &args.to)
                    .url()
                    .await
                    .context("no --from given, and --to's dead-letter queue cannot be found")?,
            };
            let report = tayori_sqs::redrive(&sqs, &from, &args.to, args.max, |moved| {
                eprintln!("moved {moved} messages so far")
            })
            .await?;
            println!("moved {} messages from {from} to {}", report.moved, args.to);
            Ok(())
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let config = WorkerConfig::load(args.config.as_deref())?;
            print!("{}", config.redacted()?);
            Ok(())
        }
        Command::Templates(command) => tayori::templates_cmd::run(command),
        Command::Admin(command) => tayori::admin::run(command).await,
        Command::Unsubscribe(command) => tayori::unsubscribe_cmd::run(command).await,
    }
}
