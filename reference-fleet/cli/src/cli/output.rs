//! Small helpers for readable CLI output.

/// Lowercase hex of the first `n` bytes followed by an ellipsis when shortened.
pub fn short_hex(bytes: &[u8], n: usize) -> String {
    if bytes.len() <= n { hex::encode(bytes) } else { format!("{}…", hex::encode(&bytes[..n])) }
}

/// POSIX seconds as an RFC 3339 UTC timestamp (spec/conventions.md §5).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Progress through work of many steps that takes more than a second (a ceremony, a
/// rotation, a benchmark): each step printed as `  · step` on standard error (the status
/// stream; results go to standard output), and a spinner there naming the step in progress
/// with the time spent, hidden with `--json` or when standard output is not a terminal.
pub struct Steps {
    bar: indicatif::ProgressBar,
    json: bool,
}

impl Steps {
    /// Start showing progress.
    pub fn new(json: bool) -> Self {
        let visible = !json && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let bar = if visible {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        Steps { bar, json }
    }

    /// A step was done, or begins: print it, and show it beside the spinner.
    pub fn step(&self, line: &str) {
        if !self.json {
            self.bar.suspend(|| eprintln!("  · {line}"));
        }
        self.bar.set_message(line.to_owned());
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn short_hex_shortens() {
        assert_eq!(short_hex(&[1, 2, 3], 2), "0102…");
        assert_eq!(short_hex(&[1, 2], 2), "0102");
    }
}
