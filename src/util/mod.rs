//! Small utilities shared across modules.

pub mod atomic_file;
pub mod base_url;
pub mod digest;
pub mod random;
pub mod retry;
pub mod run_to_end;
pub mod time;

/// Formats an error and its sources as one line, for the log.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// How many decimal digits `n` has.
pub fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}
