//! The JSON nesting limit of the dump reader.
//!
//! Every archive reader we test must accept what `build` accepts: serde_json
//! (which `verify` uses) stops at 128 levels and Python's `json` near 1,000
//! (its recursion limit), and the archive nests a record's values up to
//! five levels deeper than the record itself (a response's answer sits in
//! `tasks[].responses[].answer[]` of its submission's line). So a record
//! line may nest at most [`MAX_JSON_DEPTH`] levels, the line's own object
//! counting as one: far more than any real datapoint, and far below every
//! reader's limit once the archive's own levels are added.

/// How deep a record's JSON may nest, its own object counting as one level.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether the JSON `text` nests deeper than `max` levels of objects and
/// arrays. Brackets inside strings do not count. Most lines hold fewer
/// opening brackets than the limit, which a quick count shows without
/// following strings.
pub(crate) fn nests_deeper_than(text: &[u8], max: usize) -> bool {
    let openings = text.iter().filter(|&&b| b == b'{' || b == b'[').count();
    if openings <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_levels_outside_strings_only() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(!nests_deeper_than(deep(64).as_bytes(), 64));
        assert!(nests_deeper_than(deep(65).as_bytes(), 64));
        let in_string = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert!(!nests_deeper_than(in_string.as_bytes(), 64));
        let siblings = format!("[{}]", "[],".repeat(200) + "[]");
        assert!(!nests_deeper_than(siblings.as_bytes(), 64));
    }
}
