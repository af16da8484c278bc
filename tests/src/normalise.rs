//! Normalisation of client output for differential comparison between our
//! daemon and the C reference: removes what carries no meaning (ports the
//! kernel picked, order of lines in unordered listings, whitespace runs).
//! Pure string functions; no I/O, no RFC.

/// Collapses runs of spaces and tabs to one space and trims line ends,
/// since column widths follow from the data, not from the daemon.
pub fn squeeze(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Keeps the first `header` lines in place and sorts the rest: for
/// listings whose order is not part of the protocol's promise.
pub fn sort_body(s: &str, header: usize) -> String {
    let mut lines: Vec<&str> = s.lines().collect();
    let split = header.min(lines.len());
    lines[split..].sort_unstable();
    lines.join("\n")
}

/// Replaces every decimal number in `s` that is not one of `keep` by `N`
/// (for outputs containing kernel-chosen ports or counters).
pub fn mask_numbers_except(s: &str, keep: &[&str]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut num = String::new();
    let flush = |num: &mut String, out: &mut String| {
        if !num.is_empty() {
            if keep.contains(&num.as_str()) {
                out.push_str(num);
            } else {
                out.push('N');
            }
            num.clear();
        }
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            flush(&mut num, &mut out);
            out.push(c);
        }
    }
    flush(&mut num, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeeze_collapses_columns() {
        assert_eq!(squeeze("a  b\t c \nd"), "a b c\nd");
    }

    #[test]
    fn sort_body_keeps_header() {
        assert_eq!(sort_body("h\nb\na", 1), "h\na\nb");
    }

    #[test]
    fn mask_keeps_listed_numbers() {
        assert_eq!(
            mask_numbers_except("100000 2 udp 4242", &["100000", "2"]),
            "100000 2 udp N"
        );
    }
}
