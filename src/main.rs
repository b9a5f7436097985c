//! The `dird` binary: parse the command line, set up logging, run the command.

use clap::Parser;

use dird::cli::{Cli, LogFormat};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIRD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The filter is reloadable: `[log] level` at start and on SIGHUP (daemon::reload).
    let reloader: dird::daemon::reload::LogReloader = match cli.log_format {
        LogFormat::Human => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |spec| reload_filter(spec, |f| handle.reload(f)))
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |spec| reload_filter(spec, |f| handle.reload(f)))
        }
    };
    dird::daemon::reload::set_log_reloader(reloader);
    match dird::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dird: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn reload_filter(
    spec: &str,
    swap: impl FnOnce(tracing_subscriber::EnvFilter) -> Result<(), tracing_subscriber::reload::Error>,
) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(spec)
        .map_err(|e| format!("`{spec}` is not a log filter: {e}"))?;
    swap(filter).map_err(|e| e.to_string())
}
