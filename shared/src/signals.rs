//! SIGINT/SIGTERM for both binaries: the first signal asks for a graceful
//! shutdown, the second exits at once (status 130).

/// Install the handler on the current tokio runtime. `first` runs on the first
/// signal (cancel the root token, log); `force` runs just before the forced
/// exit on the second (e.g. take child processes down: `exit` skips destructors).
/// Returns an error if the SIGTERM handler cannot be installed.
pub fn spawn_handler<F, G>(first: F, force: G) -> std::io::Result<()>
where
    F: FnOnce() + Send + 'static,
    G: FnOnce() + Send + 'static,
{
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut first = Some(first);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            match first.take() {
                Some(f) => f(),
                None => {
                    force();
                    std::process::exit(130);
                }
            }
        }
    });
    Ok(())
}
