//! `nextdeploy`: the hub (`nextdeploy hub`) and the CLI (every other subcommand).

use clap::Parser;
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

fn main() {
    // Before any thread exists: see the module doc of `malloc`.
    nextdeploy_shared::malloc::tune();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(main_async()),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    }
}

async fn main_async() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hub(args) => {
            init_logging("info");
            nextdeploy_hub::serve::run_hub(args).await
        }
        _ => {
            init_logging("warn");
            cli::run(cli).await
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
