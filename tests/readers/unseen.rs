//! Archives of dumps built on the fly: non-ASCII names everywhere, and
//! seeded random dumps. Every reader, `verify` and the README example.

use super::sample::build_verified;
use super::{check_all, dumps, Depth};

#[test]
fn non_ascii_names_read_the_same_in_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dumps::non_ascii(&dir.path().join("dump"));
    let archive = build_verified(&dump, dir.path());
    let manifest = dumps::manifest(&archive, &dump);
    let non_ascii = manifest.keys().filter(|n| !n.is_ascii()).count();
    assert!(
        non_ascii >= 5,
        "expected many non-ASCII names, got {manifest:?}"
    );
    check_all(&archive, &manifest, Depth::Extract);
    dumps::run_readme_example(&archive);
}

#[test]
fn random_dumps_pass_verify_and_every_reader() {
    for seed in [7, 1_234, 98_765] {
        let dir = tempfile::tempdir().unwrap();
        let dump = dumps::random(&dir.path().join("dump"), seed);
        let archive = build_verified(&dump, dir.path());
        let manifest = dumps::manifest(&archive, &dump);
        check_all(&archive, &manifest, Depth::Extract);
        dumps::run_readme_example(&archive);
    }
}
