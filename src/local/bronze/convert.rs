//! Small helpers of the Bronze decoder: JSON compaction and Hive type names for messages.

/// Appends the JSON text `raw` (valid, with whitespace outside strings) to `out`
/// in compact form: that whitespace dropped, strings copied as they are.
pub(crate) fn push_compact_json(out: &mut Vec<u8>, raw: &[u8]) {
    let mut in_str = false;
    let mut escaped = false;
    for &b in raw {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            out.push(b);
        } else if b == b'"' {
            in_str = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
        }
    }
}
