//! Safe names for uploaded files inside the archive: the one rule set that
//! the writer applies and `verify` checks.
//!
//! Upload names come from participants and can be anything: paths, control
//! and invisible format characters, Windows device names, two spellings of
//! one accented letter, thousands of bytes. [`safe_file_name`] turns any of
//! them into one plain file name that every unzip tool on every system
//! extracts in place, and [`NameRegistry`] assembles the last component
//! `<submission_id>_<safe name>`, cut to [`MAX_COMPONENT_BYTES`], and makes
//! it unique under [`fold_key`] (NFC and full Unicode case folding: what
//! case-insensitive, normalising file systems such as macOS's compare) by
//! adding `-2`, `-3`, ... before the extension.
//!
//! `verify` does not derive names on its own: it checks that every `files/`
//! component is a fixed point of [`safe_file_name`], fits
//! [`MAX_COMPONENT_BYTES`], and is unique under [`fold_key`]. Sharing is
//! the point here: a second, independent copy of these rules could drift
//! from the writer's, and then verify would pass archives that a reader
//! cannot extract (or fail good ones).

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;

use crate::hash::HashSet;

/// The most bytes one path component may have: the limit of ext4, APFS,
/// NTFS (in UTF-16 units, which UTF-8 bytes bound) and of `unzip`.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// The most bytes of a submission or batch id used as a name prefix, so
/// that even the longest id leaves room in a component for a file name and
/// a `-N` suffix (and, for archive names, for a temporary file's suffix).
pub const MAX_PREFIX_BYTES: usize = 200;

/// Characters Windows forbids in names; each becomes `_`.
const RESERVED: &str = "<>:\"|?*";

/// Windows device names, reserved whatever the extension. COM0 and LPT0
/// and the superscript digits are reserved too, as Microsoft documents.
const DEVICE_NAMES: [&str; 32] = [
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Makes an upload's `file_name` safe to use as one path component.
///
/// In order: any directory part is dropped (`/` and `\`); control
/// characters and format characters (category Cf: bidi overrides, zero
/// width characters, U+FEFF) are removed; `<>:"|?*` become `_`; the result
/// is normalised to NFC; trailing dots and spaces are trimmed; a Windows
/// device name gets a leading `_`; an empty name becomes `file`; and a name
/// over [`MAX_COMPONENT_BYTES`] is cut on a character boundary, keeping its
/// extension. A safe name is its own safe name.
///
/// ```
/// use batch_export::naming::safe_file_name;
/// assert_eq!(safe_file_name("C:\\Users\\me\\report?.pdf"), "report_.pdf");
/// assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
/// assert_eq!(safe_file_name("con.txt"), "_con.txt");
/// assert_eq!(safe_file_name("rlo\u{202e}gpj.exe"), "rlogpj.exe");
/// assert_eq!(safe_file_name(" .. "), "file");
/// ```
pub fn safe_file_name(file_name: &str) -> String {
    fit(&clean(file_name), MAX_COMPONENT_BYTES)
}

/// Every rule of [`safe_file_name`] but the length.
fn clean(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut name = finish(&replace_unsafe_chars(base));
    if is_device_name(&name) {
        name.insert(0, '_');
    }
    name
}

/// Control and format characters removed, reserved ones replaced.
fn replace_unsafe_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| !is_invisible(c))
        .map(|c| if RESERVED.contains(c) { '_' } else { c })
        .collect()
}

/// NFC, then no trailing dots or spaces, then never empty. NFC comes after
/// removing characters, because removing one (a zero-width joiner between
/// a letter and its accent) can leave a string that is not NFC.
fn finish(text: &str) -> String {
    let normalised: String = text.nfc().collect();
    let trimmed = normalised.trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Characters a name must not hold: control characters (category Cc) and
/// format characters (Cf), which are invisible or reorder what is shown
/// (`rlo\u{202e}gpj.exe` displays as `rloexe.jpg`).
fn is_invisible(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// Every character of general category Cf (format) in Unicode 18, as
/// inclusive ranges in code point order. Twenty-one ranges do not justify a
/// crate (the engine's dependency budget is 60); a test compares the table
/// with `unicode-properties` (a dev-dependency) over every code point, so a
/// newer Unicode that adds a format character fails the tests, not names.
const FORMAT_CHARACTERS: [(char, char); 21] = [
    ('\u{ad}', '\u{ad}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0001}', '\u{e0001}'),
    ('\u{e0020}', '\u{e007f}'),
];

/// True for a format character (category Cf).
fn is_format(c: char) -> bool {
    // ASCII and most of Latin-1 hold none: skip the search for them.
    if c < '\u{ad}' {
        return false;
    }
    FORMAT_CHARACTERS
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Windows reserves device names whatever the extension (`nul.txt` too),
/// and ignores spaces before the extension (`nul .txt`).
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    DEVICE_NAMES.iter().any(|d| d.eq_ignore_ascii_case(stem))
}

/// The key two names collide under: NFC and full Unicode case folding,
/// in the canonical caseless form of the Unicode standard (D145), so
/// `Straße.txt` and `STRASSE.TXT`, or `café` spelt NFC and NFD, share one.
///
/// ```
/// use batch_export::naming::fold_key;
/// assert_eq!(fold_key("Straße.txt"), fold_key("STRASSE.TXT"));
/// assert_eq!(fold_key("caf\u{e9}"), fold_key("cafe\u{301}"));
/// assert_ne!(fold_key("a.txt"), fold_key("b.txt"));
/// ```
pub fn fold_key(name: &str) -> String {
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    name.nfd().default_case_fold().nfd().nfc().collect()
}

/// What is wrong with a `files/` entry's last component by the rules the
/// writer follows, or `None` when it is one the writer could have made.
pub fn component_fault(component: &str) -> Option<String> {
    if component.len() > MAX_COMPONENT_BYTES {
        return Some(format!(
            "{} bytes, over the {MAX_COMPONENT_BYTES} a file system takes",
            component.len()
        ));
    }
    let safe = safe_file_name(component);
    (safe != component).then(|| format!("not a safe name (safe: {safe:?})"))
}

/// Splits a name into stem and extension (with its dot) the way most tools
/// do: at the last dot, unless the name is only dots before it (`.bashrc`).
pub fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if name[..dot].chars().any(|c| c != '.') => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    }
}

/// `name` cut to at most `max` bytes on a character boundary, keeping the
/// extension when it leaves room for some stem, and still safe: a cut can
/// expose a trailing dot or space, a device name, or (rarely) a string
/// that NFC changes. `max` is never below the 33 bytes a 200-byte prefix
/// and a 20-digit suffix leave, so a safe name always fits.
fn fit(name: &str, max: usize) -> String {
    let mut limit = max;
    loop {
        if name.len() <= limit {
            return name.to_owned();
        }
        let (stem, extension) = split_extension(name);
        let cut = if extension.len() >= limit {
            floor_char_boundary(name, limit).to_owned()
        } else {
            format!(
                "{}{extension}",
                floor_char_boundary(stem, limit - extension.len())
            )
        };
        let fitted = clean(&cut);
        if fitted.len() <= max || limit == 0 {
            return fitted;
        }
        limit -= 1;
    }
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

/// Makes a submission or batch id usable as the prefix of a name.
/// Ordinary ids pass unchanged; separators, reserved, control and format
/// characters cannot reach a name, it is NFC, and an absurdly long id is
/// cut to [`MAX_PREFIX_BYTES`].
pub fn safe_prefix(submission_id: &str) -> String {
    let cleaned = replace_unsafe_chars(submission_id).replace(['/', '\\'], "_");
    let normalised: String = cleaned.nfc().collect();
    floor_char_boundary(&normalised, MAX_PREFIX_BYTES).to_owned()
}

/// The file name of a batch's archive, `<batch-id>-export-<YYYYMMDD-HHMMSS>.zip`
/// at `at` in UTC: what `build` writes by default, what the service names
/// its downloads and what the client falls back to.
///
/// ```
/// use batch_export::naming::archive_file_name;
/// use time::{Date, Month, Time, UtcOffset};
/// let day = Date::from_calendar_date(2024, Month::May, 1).unwrap();
/// let at = day
///     .with_time(Time::from_hms(12, 30, 5).unwrap())
///     .assume_offset(UtcOffset::from_hms(2, 0, 0).unwrap());
/// assert_eq!(archive_file_name("b/1", at), "b_1-export-20240501-103005.zip");
/// ```
pub fn archive_file_name(batch_id: &str, at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    // Written out rather than with `time`'s format macros, which would
    // bring a proc-macro crate into the engine for one line.
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    format!("{}-export-{stamp}.zip", safe_prefix(batch_id))
}

/// Hands out unique entry names, comparing them by [`fold_key`].
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
    /// `-3`, ... before the extension, with `name` cut (keeping the
    /// extension) so the last component fits [`MAX_COMPONENT_BYTES`].
    /// `prefix` comes from [`safe_prefix`] and `name` from
    /// [`safe_file_name`].
    pub fn claim(&mut self, prefix: &str, name: &str) -> String {
        let mut counter = 1u64;
        loop {
            let suffix = if counter == 1 {
                String::new()
            } else {
                format!("-{counter}")
            };
            let room = MAX_COMPONENT_BYTES - prefix.len() - 1 - suffix.len();
            let fitted = fit(name, room);
            let (stem, extension) = split_extension(&fitted);
            let candidate = format!("files/{prefix}_{stem}{suffix}{extension}");
            if self.taken.insert(fold_key(&candidate)) {
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
    fn removes_format_characters() {
        assert_eq!(safe_file_name("rlo\u{202e}gpj.exe"), "rlogpj.exe");
        assert_eq!(
            safe_file_name("\u{feff}zero\u{200b}width.txt"),
            "zerowidth.txt"
        );
        assert_eq!(safe_file_name("\u{2066}iso\u{2069}.txt"), "iso.txt");
        assert_eq!(safe_file_name("\u{200b}"), "file");
    }

    #[test]
    fn the_format_table_is_exactly_unicode_category_cf() {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        let differing: Vec<String> = (0..=0x10_ffff_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_format(c) != (c.general_category() == GeneralCategory::Format))
            .map(|c| format!("U+{:04X}", u32::from(c)))
            .collect();
        assert!(differing.is_empty(), "table differs at {differing:?}");
        assert!(FORMAT_CHARACTERS.windows(2).all(|w| w[0].1 < w[1].0));
    }

    #[test]
    fn archive_names_count_years_and_pad_every_field() {
        use time::{Date, Month, Time};
        let day = Date::from_calendar_date(987, Month::February, 3).unwrap();
        let at = day.with_time(Time::from_hms(4, 5, 6).unwrap()).assume_utc();
        assert_eq!(archive_file_name("b", at), "b-export-09870203-040506.zip");
    }

    #[test]
    fn normalises_to_nfc_also_after_removing_characters() {
        assert_eq!(safe_file_name("cafe\u{301}.txt"), "caf\u{e9}.txt");
        assert_eq!(safe_file_name("cafe\u{200d}\u{301}.txt"), "caf\u{e9}.txt");
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
        assert_eq!(safe_file_name("CONIN$"), "_CONIN$");
        assert_eq!(safe_file_name("conout$.log"), "_conout$.log");
        assert_eq!(safe_file_name("COM¹.txt"), "_COM¹.txt");
        assert_eq!(safe_file_name("lpt³"), "_lpt³");
        assert_eq!(safe_file_name("nul .txt"), "_nul .txt");
        assert_eq!(safe_file_name("COM10"), "COM10");
    }

    #[test]
    fn cuts_long_names_on_a_character_boundary_keeping_the_extension() {
        let name = format!("{}.jpeg", "é".repeat(150));
        let safe = safe_file_name(&name);
        assert!(safe.len() <= MAX_COMPONENT_BYTES);
        assert!(safe.ends_with(".jpeg"));
        assert_eq!(safe.len(), 255, "125 two-byte characters and the extension");
    }

    #[test]
    fn a_cut_never_leaves_a_trailing_space() {
        let name = format!("{}{}", "a".repeat(254), " b");
        assert_eq!(safe_file_name(&name), "a".repeat(254));
    }

    #[test]
    fn safe_names_are_fixed_points() {
        let hostile = [
            "../x",
            "a\u{202e}b",
            "CON",
            "cafe\u{301}",
            "x. ",
            "",
            "?",
            &"ü".repeat(300),
            &format!("{}.{}", "a", "b".repeat(300)),
        ];
        for name in hostile {
            let safe = safe_file_name(name);
            assert_eq!(safe_file_name(&safe), safe, "{name:?}");
            assert_eq!(component_fault(&safe), None, "{name:?}");
        }
        assert!(component_fault("a\u{200b}b").is_some());
        assert!(component_fault(&"a".repeat(256)).is_some());
    }

    #[test]
    fn full_case_folding_and_nfc_decide_uniqueness() {
        assert_eq!(fold_key("Straße.TXT"), fold_key("STRASSE.txt"));
        assert_eq!(fold_key("CAFÉ"), fold_key("cafe\u{301}"));
        assert_eq!(fold_key("ΣΊΣΥΦΟΣ"), fold_key("σίσυφος"));
        assert_ne!(fold_key("café"), fold_key("cafe"));
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
        assert_eq!(names.claim("s2", "Straße"), "files/s2_Straße");
        assert_eq!(names.claim("s2", "STRASSE"), "files/s2_STRASSE-2");
    }

    #[test]
    fn the_whole_component_fits_with_any_suffix() {
        let prefix = safe_prefix(&"s".repeat(300));
        assert_eq!(prefix.len(), MAX_PREFIX_BYTES);
        let name = safe_file_name(&format!("{}.tar.gz", "ü".repeat(200)));
        let mut names = NameRegistry::new();
        for counter in 1..=12 {
            let entry = names.claim(&prefix, &name);
            let component = entry.strip_prefix("files/").unwrap();
            assert!(component.len() <= MAX_COMPONENT_BYTES, "{counter}: {entry}");
            assert!(component.ends_with(".gz"), "{entry}");
            assert_eq!(component_fault(component), None, "{entry}");
            if counter > 1 {
                assert!(component.ends_with(&format!("-{counter}.gz")), "{entry}");
            }
        }
    }

    #[test]
    fn prefixes_lose_separators_and_invisible_characters() {
        assert_eq!(safe_prefix("sub/1\\2\u{202e}"), "sub_1_2");
        assert_eq!(safe_prefix("sube\u{301}"), "sub\u{e9}");
    }

    #[test]
    fn split_extension_treats_leading_dots_as_stem() {
        assert_eq!(split_extension(".bashrc"), (".bashrc", ""));
        assert_eq!(split_extension("a.tar.gz"), ("a.tar", ".gz"));
        assert_eq!(split_extension("plain"), ("plain", ""));
    }
}
