//! The bytes of synthetic uploads and the random numbers behind every
//! synthetic record.
//!
//! Every record and every upload gets its own generator, seeded from the
//! dump's seed and the record's kind and index, so the dump is the same
//! bytes whichever thread writes which part, and parts can be written in
//! parallel.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A small, fast generator (wyrand): statistically good enough for test
/// data, several GB/s when filling buffers, and the same on every machine.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for record `index` of kind `stream` in dump `seed`.
    pub(crate) fn for_record(seed: u64, stream: u64, index: u64) -> Rng {
        let mut rng = Rng(splitmix(
            seed ^ splitmix(stream.wrapping_mul(0x9e37_79b9) ^ splitmix(index)),
        ));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A number in `0..n` (`n` > 0); the slight bias does not matter here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `min..=max`.
    pub(crate) fn between(&mut self, min: u64, max: u64) -> u64 {
        min + self.below(max - min + 1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    /// One item of `items`.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        let mut chunks = buffer.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What kind of bytes an upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Csv,
    Json,
    Text,
    Jpeg,
    Mp4,
    Png,
}

impl Kind {
    pub(crate) const COMPRESSIBLE: [Kind; 3] = [Kind::Csv, Kind::Json, Kind::Text];
    pub(crate) const INCOMPRESSIBLE: [Kind; 3] = [Kind::Jpeg, Kind::Mp4, Kind::Png];

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Kind::Csv => "text/csv",
            Kind::Json => "application/json",
            Kind::Text => "text/plain",
            Kind::Jpeg => "image/jpeg",
            Kind::Mp4 => "video/mp4",
            Kind::Png => "image/png",
        }
    }

    pub(crate) fn file_name(self, n: u64) -> String {
        match self {
            Kind::Csv => format!("measurements-{n}.csv"),
            Kind::Json => format!("readings {n}.json"),
            Kind::Text => format!("notes_{n}.txt"),
            Kind::Jpeg => format!("IMG_{n:04}.jpg"),
            Kind::Mp4 => format!("clip-{n}.mp4"),
            Kind::Png => format!("scan {n}.png"),
        }
    }

    /// The first bytes of a real file of the kind, so tools sniffing
    /// content see what the content type says.
    fn magic(self) -> &'static [u8] {
        match self {
            Kind::Jpeg => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
            Kind::Mp4 => b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00",
            Kind::Png => b"\x89PNG\r\n\x1a\n",
            _ => b"",
        }
    }
}

/// Bytes produced per step; also the most an upload's writer holds.
const PIECE: usize = 1 << 20;

/// Writes `size` bytes of kind `kind` to `path`, returning their SHA-256.
pub(crate) fn write_upload(
    path: &Path,
    kind: Kind,
    size: u64,
    rng: &mut Rng,
) -> io::Result<[u8; 32]> {
    let mut file = File::create(path)?;
    let mut sha = Sha256::new();
    let mut buffer = Vec::with_capacity(PIECE + 256);
    let mut written = 0u64;
    let mut row = 0u64;
    while written < size {
        let want = (size - written).min(PIECE as u64) as usize;
        buffer.clear();
        if Kind::INCOMPRESSIBLE.contains(&kind) {
            buffer.resize(want, 0);
            rng.fill(&mut buffer);
            if written == 0 {
                let magic = kind.magic();
                let n = magic.len().min(want);
                buffer[..n].copy_from_slice(&magic[..n]);
            }
        } else {
            if written == 0 && kind == Kind::Csv {
                buffer.extend_from_slice(b"row,site,species,count,confidence,note\n");
            }
            while buffer.len() < want {
                text_row(kind, row, rng, &mut buffer);
                row += 1;
            }
            buffer.truncate(want);
        }
        sha.update(&buffer);
        file.write_all(&buffer)?;
        written += want as u64;
    }
    Ok(sha.finalize().into())
}

const SITES: [&str; 8] = [
    "north", "south", "east", "west", "ridge", "valley", "marsh", "forest",
];
const SPECIES: [&str; 12] = [
    "deer", "fox", "boar", "badger", "hare", "owl", "lynx", "wolf", "marten", "squirrel", "heron",
    "none",
];
/// Words of free-text answers and notes: ASCII without quotes or
/// backslashes, so they need no escaping in JSON, plus one non-ASCII word.
pub(crate) const WORDS: [&str; 24] = [
    "the", "animal", "is", "near", "camera", "a", "small", "large", "dark", "blurry", "clearly",
    "visible", "left", "right", "edge", "of", "frame", "two", "three", "moving", "towards",
    "trees", "Reh", "grün",
];

/// One row of a compressible upload: CSV, a JSON line or a line of notes.
fn text_row(kind: Kind, row: u64, rng: &mut Rng, out: &mut Vec<u8>) {
    let site = rng.pick(&SITES);
    let species = rng.pick(&SPECIES);
    let count = rng.below(40);
    let confidence = rng.below(1000);
    match kind {
        Kind::Csv => {
            let _ = writeln!(
                out,
                "{row},{site},{species},{count},0.{confidence:03},{}",
                rng.pick(&WORDS)
            );
        }
        Kind::Json => {
            let _ = writeln!(
                out,
                "{{\"row\": {row}, \"site\": \"{site}\", \"species\": \"{species}\", \"count\": {count}, \"confidence\": 0.{confidence:03}}}"
            );
        }
        _ => {
            for _ in 0..8 + rng.below(8) {
                out.extend_from_slice(rng.pick(&WORDS).as_bytes());
                out.push(b' ');
            }
            let _ = writeln!(out, "({species} at {site}, {count})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_seeded_per_record() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_record(1, 2, 3).next_u64())
            .collect();
        assert!(a.iter().all(|&x| x == a[0]));
        assert_ne!(
            Rng::for_record(1, 2, 3).next_u64(),
            Rng::for_record(1, 2, 4).next_u64()
        );
    }

    #[test]
    fn ranges_are_respected() {
        let mut rng = Rng::for_record(7, 0, 0);
        for _ in 0..1000 {
            let x = rng.between(5, 9);
            assert!((5..=9).contains(&x));
        }
    }
}
