//! Progress bars for long jobs (snapshot build, key import): shown only for more than
//! 100,000 keys and only when stderr is a terminal, so scripts and CI logs stay quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Jobs up to this many keys finish too fast to need a bar.
pub const BAR_ABOVE: u64 = 100_000;

/// Whether a bar would be drawn at all (stderr is a terminal).
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `len` steps, or a hidden one (every call on it is a no-op). indicatif's stderr
/// target also hides itself when stderr is not a terminal; the explicit check keeps that
/// behaviour visible here.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if len <= BAR_ABOVE || !wanted() {
        return ProgressBar::hidden();
    }
    let style =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {human_pos}/{human_len} ({eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

/// A spinner for a step of unknown length on a job of `keys` keys (hidden like `bar`).
pub fn spinner(keys: u64, what: &str) -> ProgressBar {
    if keys <= BAR_ABOVE || !wanted() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        spinner.set_style(style);
    }
    spinner.set_message(what.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}
