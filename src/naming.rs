//! Safe names for uploaded files inside the archive.
//!
//! Upload names come from participants and can be anything: paths, control
//! characters, Windows device names, thousands of bytes. [`safe_file_name`]
//! turns any of them into one plain file name that every unzip tool on every
//! system extracts in place, and [`NameRegistry`] makes the resulting entry
//! names unique, also ignoring case, by adding `-2`, `-3`, ... before the
//! extension.

use crate::hash::HashSet;

/// The most bytes a safe name may have.
pub const MAX_NAME_BYTES: usize = 200;

const DEVICE_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Makes an upload's `file_name` safe to use as one path component.
///
/// ```
/// use batch_export::naming::safe_file_name;
/// assert_eq!(safe_file_name("C:\\Users\\me\\report?.pdf"), "report_.pdf");
/// assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
/// assert_eq!(safe_file_name("con.txt"), "_con.txt");
/// assert_eq!(safe_file_name(" .. "), "file");
/// ```
pub fn safe_file_name(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if "<>:\"|?*".contains(c) { '_' } else { c })
        .collect();
    let mut name = cleaned.trim_end_matches(['.', ' ']).to_owned();
    if is_device_name(&name) {
        name.insert(0, '_');
    }
    if name.is_empty() {
        name = "file".to_owned();
    }
    truncate_keeping_extension(&name, MAX_NAME_BYTES)
}

/// Windows reserves device names whatever the extension (`nul.txt` too).
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    DEVICE_NAMES.iter().any(|d| d.eq_ignore_ascii_case(stem))
}

/// Splits a name into stem and extension (with its dot) the way most tools
/// do: at the last dot, unless the name is only dots before it (`.bashrc`).
pub fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if name[..dot].chars().any(|c| c != '.') => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    }
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, extension) = split_extension(name);
    if extension.len() >= max {
        return floor_char_boundary(name, max).to_owned();
    }
    let stem = floor_char_boundary(stem, max - extension.len());
    format!("{stem}{extension}")
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
fn floor_char_boundary(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Makes a submission id usable as the prefix of an entry name. Ordinary ids
/// pass unchanged; separators and control characters cannot reach a name,
/// and an absurdly long id is cut so the name still fits a ZIP header.
pub fn safe_prefix(submission_id: &str) -> String {
    let cleaned: String = submission_id
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if "/\\<>:\"|?*".contains(c) { '_' } else { c })
        .collect();
    floor_char_boundary(&cleaned, MAX_NAME_BYTES).to_owned()
}

/// The file name of a batch's archive, `<batch-id>-export-<YYYYMMDD-HHMMSS>.zip`
/// at `at` in UTC: what `build` writes by default, what the service names
/// its downloads and what the client falls back to.
///
/// ```
/// use batch_export::naming::archive_file_name;
/// let at = time::macros::datetime!(2024-05-01 12:30:05 +2);
/// assert_eq!(archive_file_name("b/1", at), "b_1-export-20240501-103005.zip");
/// ```
pub fn archive_file_name(batch_id: &str, at: time::OffsetDateTime) -> String {
    let stamp = at
        .to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    format!("{}-export-{stamp}.zip", safe_prefix(batch_id))
}

/// Hands out unique entry names, comparing names without regard to case.
#[derive(Debug, Default)]
pub struct NameRegistry {
    taken: HashSet<String>,
}

impl NameRegistry {
    /// An empty registry.
    pub fn new() -> NameRegistry {
        NameRegistry::default()
    }

    /// Claims `files/<prefix>_<name>`, or the first free variant with `-2`,
    /// `-3`, ... before the extension.
    pub fn claim(&mut self, prefix: &str, name: &str) -> String {
        let (stem, extension) = split_extension(name);
        let mut counter = 1u64;
        loop {
            let candidate = if counter == 1 {
                format!("files/{prefix}_{name}")
            } else {
                format!("files/{prefix}_{stem}-{counter}{extension}")
            };
            let folded = if candidate.is_ascii() {
                candidate.to_ascii_lowercase()
            } else {
                candidate.to_lowercase()
            };
            if self.taken.insert(folded) {
                return candidate;
            }
            counter += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_directories_of_both_kinds() {
        assert_eq!(safe_file_name("a/b\\c.txt"), "c.txt");
        assert_eq!(safe_file_name("dir/"), "file");
    }

    #[test]
    fn removes_control_characters_and_replaces_reserved_ones() {
        assert_eq!(safe_file_name("a\u{0}b\u{7f}c\n.txt"), "abc.txt");
        assert_eq!(safe_file_name("<a>:b\"c|d?e*.txt"), "_a__b_c_d_e_.txt");
    }

    #[test]
    fn trims_trailing_dots_and_spaces() {
        assert_eq!(safe_file_name("name. . "), "name");
        assert_eq!(safe_file_name("..."), "file");
    }

    #[test]
    fn prefixes_device_names_in_any_case() {
        assert_eq!(safe_file_name("NUL"), "_NUL");
        assert_eq!(safe_file_name("com1.tar.gz"), "_com1.tar.gz");
        assert_eq!(safe_file_name("console.txt"), "console.txt");
    }

    #[test]
    fn cuts_long_names_on_a_character_boundary_keeping_the_extension() {
        let name = format!("{}.jpeg", "é".repeat(150));
        let safe = safe_file_name(&name);
        assert!(safe.len() <= MAX_NAME_BYTES);
        assert!(safe.ends_with(".jpeg"));
        assert_eq!(safe.len(), 199, "97 two-byte characters and the extension");
    }

    #[test]
    fn registry_numbers_clashes_before_the_extension_ignoring_case() {
        let mut names = NameRegistry::new();
        assert_eq!(names.claim("s1", "photo.jpg"), "files/s1_photo.jpg");
        assert_eq!(names.claim("s1", "Photo.jpg"), "files/s1_Photo-2.jpg");
        assert_eq!(names.claim("s1", "photo.jpg"), "files/s1_photo-3.jpg");
        assert_eq!(names.claim("s1", "notes"), "files/s1_notes");
        assert_eq!(names.claim("s1", "notes"), "files/s1_notes-2");
        assert_eq!(names.claim("s2", "photo.jpg"), "files/s2_photo.jpg");
    }

    #[test]
    fn split_extension_treats_leading_dots_as_stem() {
        assert_eq!(split_extension(".bashrc"), (".bashrc", ""));
        assert_eq!(split_extension("a.tar.gz"), ("a.tar", ".gz"));
        assert_eq!(split_extension("plain"), ("plain", ""));
    }
}
