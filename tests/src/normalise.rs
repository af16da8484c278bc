//! Normalisation of client output for differential comparison between our
//! daemon and the C reference: removes what carries no meaning (order of
//! rows in unordered listings, whitespace runs).
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

/// In `rpcinfo -m` output, sorts the rows of each "call statistics"
/// table: the C daemon lists them in hash-table order, which means nothing.
pub fn sort_stat_tables(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    let mut in_table = false;
    let mut header_left = 0;
    for line in s.lines() {
        if line.contains("call statistics") {
            in_table = true;
            header_left = 1;
            out.push(line.to_string());
            continue;
        }
        if in_table && header_left > 0 {
            header_left -= 1;
            out.push(line.to_string());
            continue;
        }
        if in_table && !line.trim().is_empty() {
            rows.push(line.to_string());
            continue;
        }
        if in_table {
            rows.sort_unstable();
            out.append(&mut rows);
            in_table = false;
        }
        out.push(line.to_string());
    }
    rows.sort_unstable();
    out.append(&mut rows);
    out.join("\n")
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
    fn stat_tables_sorted_and_rest_kept() {
        let s = "A\nX call statistics\nprog vers\nz 1\na 2\n\nB\nY call statistics\nh\nq\np";
        assert_eq!(
            sort_stat_tables(s),
            "A\nX call statistics\nprog vers\na 2\nz 1\n\nB\nY call statistics\nh\np\nq"
        );
    }
}
