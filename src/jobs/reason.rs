//! What the service may tell a client about an error: one line, with no
//! path of the server's file system in it.
//!
//! A failed job's reason and every error body go to whoever holds a token,
//! who has no business learning where the service keeps its data folder
//! or state. Errors keep their full paths as data (for the operator's
//! logs); what is shown is first made relative to the dump (so a reason
//! still says `uploads/up-01`), and then any absolute path left (the
//! state folder, a link's target outside the dump) is replaced by
//! [`HIDDEN_PATH`].

use std::path::Path;

use crate::error::display_chain;

/// What an absolute server path is replaced with.
pub const HIDDEN_PATH: &str = "<server path>";

/// The one-line reason of a failed build of the dump at `dump_dir`.
pub(crate) fn failure_reason(err: &crate::Error, dump_dir: &Path) -> String {
    redact_paths(&display_chain(err), Some(dump_dir))
}

/// `text` with every absolute path hidden; paths inside `dump_dir` are
/// shown relative to it instead.
pub fn redact_paths(text: &str, dump_dir: Option<&Path>) -> String {
    let mut text = text.to_owned();
    if let Some(dir) = dump_dir {
        // The canonical spelling too: the build may have resolved links
        // in the data folder's own path (`/tmp` -> `/private/tmp`).
        let canonical = dir.canonicalize().ok();
        for root in [Some(dir), canonical.as_deref()].into_iter().flatten() {
            let root = root.to_string_lossy();
            let root = root.trim_end_matches('/');
            if root.is_empty() {
                continue;
            }
            text = replace_path(&text, root);
        }
    }
    hide_absolute_paths(&text)
}

/// `text` with `root/x` written `x` and `root` alone written `the dump`,
/// where `root` is a whole path (not the start of `/data/dump-10`).
fn replace_path(text: &str, root: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(root) {
        let (before, after) = rest.split_at(at);
        let after = &after[root.len()..];
        out.push_str(before);
        match after.chars().next() {
            Some('/') => rest = &after[1..],
            None => {
                out.push_str("the dump");
                rest = after;
            }
            Some(c) if is_path_end(c) => {
                out.push_str("the dump");
                rest = after;
            }
            Some(_) => {
                out.push_str(root);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where error messages end a path.
fn is_path_end(c: char) -> bool {
    c.is_whitespace() || "\"'`,:;)]}>".contains(c)
}

/// Replaces each word that starts with `/` (at the start of the text or
/// after a space, quote or bracket) with [`HIDDEN_PATH`]. Such a word
/// runs to the next space, quote, comma, colon or closing bracket, which
/// is where error messages end a path.
fn hide_absolute_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_path = false;
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if in_path {
            if is_path_end(c) {
                in_path = false;
                out.push(c);
            }
        } else if c == '/' && previous.is_none_or(|p| p.is_whitespace() || "\"'`([{<=".contains(p))
        {
            in_path = true;
            out.push_str(HIDDEN_PATH);
        } else {
            out.push(c);
        }
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_dump_become_relative_and_others_hidden() {
        let dump = Path::new("/srv/data/batch-1");
        let text = "/srv/data/batch-1/uploads/up-1: permission denied; /srv/data/batch-10/x, \
                    `/srv/data/batch-1` links to \"/etc/passwd\" (see /var/state/x.zip)";
        assert_eq!(
            redact_paths(text, Some(dump)),
            "uploads/up-1: permission denied; <server path>, `the dump` links to \
             \"<server path>\" (see <server path>)"
        );
    }

    #[test]
    fn slashes_inside_words_are_kept() {
        let text = "content type text/plain, 3/4 done, files/sub-1_a.txt";
        assert_eq!(redact_paths(text, None), text);
    }
}
