//! A reader that goes away (`nextdeploy agent ps | head -1`) ends the CLI
//! quietly with status 0, as `ls | head` does: Rust ignores SIGPIPE, so a
//! write to the closed pipe fails with `EPIPE` instead, and every output
//! path (`println!`, which panics on it, and the `write_all`s whose error
//! travels up to `main`) comes here.
//!
//! An `EPIPE` from the hub's socket is not mistaken for it: [`stdout_closed`]
//! asks the kernel whether stdout's own reader is gone.

use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Whether stdout is a pipe or socket whose reading end was closed.
pub fn stdout_closed() -> bool {
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
        _ => false,
    }
}

/// Whether `e` is a failed write to a stdout nobody reads any more.
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        && stdout_closed()
}

/// Make `println!`'s panic on a closed stdout a quiet exit with status 0;
/// every other panic goes to the default hook.
pub fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && stdout_closed() {
            std::process::exit(0);
        }
        default(info);
    }));
}
