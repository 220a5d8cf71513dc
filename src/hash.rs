//! Hash maps keyed by record ids, with foldhash instead of the standard
//! SipHash: several times faster on short strings, which matters with
//! hundreds of thousands of responses, and still seeded per process so
//! crafted ids cannot aim for collisions. Nothing iterates these maps to
//! produce output (everything written is sorted first), so the seed never
//! reaches the archive's bytes.

/// A `HashMap` with the fast seeded hasher.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with the fast seeded hasher.
pub(crate) type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
