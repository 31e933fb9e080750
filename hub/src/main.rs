//! `nextdeploy`: the hub (`nextdeploy hub`) and the CLI (every other subcommand).

use clap::Parser;
use nextdeploy_hub::cli::agent::AgentCmd;
use nextdeploy_hub::cli::exit;
use nextdeploy_hub::cli::{self, Cli, Command};

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The hub's allocator: jemalloc, tuned (see `nextdeploy_hub::alloc`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // Allocator settings before any thread exists (`malloc` module doc).
    nextdeploy_shared::malloc::run(main_async())
}

async fn main_async() {
    let cli = Cli::parse();
    let out = cli.output;
    // A deploy answers Ctrl-C itself (cli/progress.rs): it says what is
    // still finishing on which server before it exits. So does exec
    // (cli/exec.rs): it puts the terminal back first.
    let deploy = matches!(
        &cli.command,
        Command::Agent(AgentCmd::Deploy(_) | AgentCmd::Rollback { .. } | AgentCmd::Exec(_))
    );
    // `hub cluster status` is a client command, run as the others.
    let hub_client = matches!(&cli.command, Command::Hub(a)
        if matches!(a.action, Some(nextdeploy_hub::backup::HubAction::Cluster(_))));
    let result = match cli.command {
        Command::Hub(args) if !hub_client => {
            init_logging("info");
            let client = nextdeploy_hub::backup::ClientFlags {
                hub: cli.hub.clone(),
                token: cli.token.is_some(),
            };
            nextdeploy_hub::serve::run_hub(*args, client, out).await
        }
        _ => {
            init_logging("warn");
            cli::pipe::exit_quietly_on_closed_stdout();
            if deploy {
                cli::run(cli).await
            } else {
                tokio::select! {
                    r = cli::run(cli) => r,
                    // The hub drops the connection's requests when it closes.
                    _ = tokio::signal::ctrl_c() => std::process::exit(exit::INTERRUPTED),
                }
            }
        }
    };
    if let Err(e) = result {
        if cli::pipe::is_closed_stdout(&e) {
            // The reader of our output went away (`| head`): not an error.
            std::process::exit(exit::OK);
        }
        cli::output::print_error(&e, out);
        std::process::exit(exit::for_error(&e));
    }
}
