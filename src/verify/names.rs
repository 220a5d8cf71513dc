//! Entry names, checked by the rules the writer follows: whatever reads
//! the archive must be able to extract every entry where its name says.
//!
//! The safe-name rules themselves (`naming`) are shared with the writer on
//! purpose: verify must pass exactly the names the writer can produce, and
//! a second copy of the rules would drift. What is checked here on top is
//! what any ZIP reader needs: relative names without `..` or backslashes,
//! no control character, the UTF-8 flag on exactly the non-ASCII names, no
//! component over 255 bytes, and no two names that a case-insensitive or
//! normalising file system (macOS, Windows) would extract to one file.

use std::collections::HashMap;

use super::problems::{Sink, VerifyProblemKind};
use crate::naming::{component_fault, fold_key, MAX_COMPONENT_BYTES};

/// Names seen so far, by [`fold_key`], with the first spelling of each.
#[derive(Debug, Default)]
pub(crate) struct SeenNames {
    first: HashMap<String, String>,
}

/// Checks one entry name and returns it (lossily decoded when not UTF-8).
pub(crate) fn check_name(
    bytes: &[u8],
    utf8_flag: bool,
    seen: &mut SeenNames,
    sink: &mut Sink,
) -> String {
    let name = String::from_utf8_lossy(bytes).into_owned();
    let mut bad = |message: &str| {
        sink.push(
            VerifyProblemKind::Name,
            Some(&name),
            None,
            message.to_owned(),
        );
    };
    if std::str::from_utf8(bytes).is_err() {
        bad("the name is not UTF-8");
    }
    if !bytes.is_ascii() && !utf8_flag {
        bad("a non-ASCII name without the UTF-8 flag");
    }
    if bytes.is_ascii() && utf8_flag {
        bad("the UTF-8 flag on an ASCII name");
    }
    if name.is_empty() {
        bad("an empty name");
    }
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if name.starts_with('/') || drive {
        bad("an absolute name");
    }
    if name.split('/').any(|part| part == "..") {
        bad("a name with a `..` component");
    }
    if name.contains('\\') {
        bad("a name with a backslash");
    }
    if name.chars().any(char::is_control) {
        bad("a name with a control character");
    }
    if let Some(long) = name
        .split('/')
        .find(|part| part.len() > MAX_COMPONENT_BYTES)
    {
        let message = format!(
            "a name component of {} bytes, over the {MAX_COMPONENT_BYTES} file systems take",
            long.len()
        );
        bad(&message);
    } else if let Some(component) = name.strip_prefix("files/") {
        if let Some(fault) = component_fault(component) {
            bad(&format!("an upload name that is {fault}"));
        }
    }
    let folded = fold_key(&name);
    match seen.first.get(&folded) {
        Some(first) if *first == name => bad("a duplicate name"),
        Some(first) => {
            let message = format!("the same name as {first:?} ignoring case and normalisation");
            bad(&message);
        }
        None => {
            seen.first.insert(folded, name.clone());
        }
    }
    name
}
