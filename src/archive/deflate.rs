//! Parallel deflate, pigz-style: data is cut into fixed-size chunks, each
//! deflated on its own worker and ended with a sync flush (byte-aligned, no
//! final bit), the last one with a final block; joined in order they form
//! one valid deflate stream. CRC-32s are computed per chunk and combined.
//!
//! Each chunk is compressed whole by libdeflate (faster than zlib's
//! streaming design at the same ratio, see BENCHMARKS.md), which writes a
//! complete stream; [`sync_flush`] turns all but the last into pieces.
//!
//! Chunk boundaries depend only on the data, never on thread count, so the
//! output is the same bytes on one thread or many.

use std::cell::RefCell;

use std::ffi::c_int;
use std::ptr::NonNull;

use rayon::prelude::*;

use super::sync_flush;

/// Size of the chunks deflated independently. Big enough that restarting
/// the dictionary costs well under 1% of ratio on JSON Lines.
pub(crate) const CHUNK: usize = 1 << 20;

/// Deflated chunks of some data, with the data's CRC-32 and length.
pub(crate) struct Deflated {
    pub(crate) pieces: Vec<Vec<u8>>,
    pub(crate) crc: crc32fast::Hasher,
    pub(crate) compressed: u64,
}

/// Deflates `input` chunk by chunk on the current rayon pool. When `last`
/// is true the stream ends with these chunks.
pub(crate) fn deflate(input: &[u8], level: u32, last: bool) -> Deflated {
    if input.is_empty() {
        let pieces = if last {
            vec![deflate_chunk(&[], level, true)]
        } else {
            Vec::new()
        };
        let compressed = pieces.iter().map(|p| p.len() as u64).sum();
        return Deflated {
            pieces,
            crc: crc32fast::Hasher::new(),
            compressed,
        };
    }
    let chunks = input.len().div_ceil(CHUNK);
    let results: Vec<(Vec<u8>, crc32fast::Hasher, usize)> = input
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(index, chunk)| {
            let mut crc = crc32fast::Hasher::new();
            crc.update(chunk);
            let is_last = last && index + 1 == chunks;
            (deflate_chunk(chunk, level, is_last), crc, chunk.len())
        })
        .collect();
    let mut crc = crc32fast::Hasher::new();
    let mut pieces = Vec::with_capacity(results.len());
    let mut compressed = 0;
    for (piece, chunk_crc, _) in results {
        crc.combine(&chunk_crc);
        compressed += piece.len() as u64;
        pieces.push(piece);
    }
    Deflated {
        pieces,
        crc,
        compressed,
    }
}

thread_local! {
    /// One compressor per worker thread and level, and the buffer it writes
    /// into. A libdeflate compressor is a few hundred KB to allocate: for
    /// many small uploads that would cost more than compressing them.
    static COMPRESSOR: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// A worker's compressor, its level and its output buffer.
struct Scratch {
    level: u32,
    compressor: Compressor,
    out: Vec<u8>,
}

/// Deflates one chunk with a fresh dictionary: a complete stream when
/// `last`, else a piece ending with a sync flush that the next chunk's
/// blocks can follow.
fn deflate_chunk(input: &[u8], level: u32, last: bool) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|scratch| scratch.level != level) {
            *slot = Some(Scratch {
                level,
                compressor: Compressor::new(level),
                out: Vec::new(),
            });
        }
        let scratch = slot.as_mut().expect("set above");
        let length = scratch.compressor.compress(input, &mut scratch.out);
        // Room for the sync flush's few bytes, so the copy is not regrown.
        let mut piece = Vec::with_capacity(length + 8);
        piece.extend_from_slice(&scratch.out[..length]);
        if !last {
            sync_flush::unfinalize(&mut piece).expect("libdeflate writes valid deflate");
        }
        piece
    })
}

/// A libdeflate compressor, called through `libdeflate-sys` directly (its
/// safe wrapper crate would be one more crate in the engine's budget).
pub(super) struct Compressor(NonNull<libdeflate_sys::libdeflate_compressor>);

impl Compressor {
    /// A compressor of libdeflate's level `level`, the same number as ours.
    /// libdeflate's go to 12, ours stop at 9; the archive stores entries of
    /// level 0 without calling the compressor.
    pub(super) fn new(level: u32) -> Compressor {
        assert!(level <= 9, "options allow levels 0 to 9 only");
        // SAFETY: any level 0..=12 is valid; null means out of memory.
        let raw = unsafe { libdeflate_sys::libdeflate_alloc_compressor(level as c_int) };
        Compressor(NonNull::new(raw).expect("memory for a libdeflate compressor"))
    }

    /// Compresses `input` into one complete raw deflate stream at the start
    /// of `out` (grown to the compress bound first) and returns its length.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        // SAFETY: the compressor is live (freed only on drop), and both
        // pointers come with their slices' lengths.
        unsafe {
            let bound =
                libdeflate_sys::libdeflate_deflate_compress_bound(self.0.as_ptr(), input.len());
            if out.len() < bound {
                out.resize(bound, 0);
            }
            let length = libdeflate_sys::libdeflate_deflate_compress(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
            );
            // 0 means the output did not fit, which the bound rules out.
            assert!(length > 0, "libdeflate output within its compress bound");
            length
        }
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_compressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_compressor(self.0.as_ptr()) }
    }
}

/// An upper bound of the deflated size of `n` bytes, to decide on ZIP64
/// before a streamed entry is written.
pub(crate) fn max_deflated_size(n: u64) -> u64 {
    let chunks = n.div_ceil(CHUNK as u64).max(1);
    n + n / 1000 + chunks * 16 + 64
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: [&str; 9] = [
        "949280:244c74c9",
        "971306:0a5e9221",
        "970746:3653ed6b",
        "960194:242eba2e",
        "885000:e6be27b0",
        "786579:e18b1203",
        "785686:29a7715c",
        "803840:81631324",
        "806606:1e259f79",
    ];
    use std::io::Read;

    fn inflate(pieces: &[Vec<u8>]) -> Vec<u8> {
        let joined = pieces.concat();
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&joined[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn chunked_stream_inflates_to_the_input() {
        let input: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        let deflated = deflate(&input, 6, true);
        assert_eq!(deflated.pieces.len(), 4);
        assert_eq!(inflate(&deflated.pieces), input);
        assert_eq!(deflated.crc.finalize(), crc32fast::hash(&input));
    }

    #[test]
    fn streams_split_across_calls_join() {
        let input = b"hello hello hello world".repeat(100_000);
        let (a, b) = input.split_at(CHUNK);
        let first = deflate(a, 1, false);
        let second = deflate(b, 1, true);
        let mut pieces = first.pieces;
        pieces.extend(second.pieces);
        assert_eq!(inflate(&pieces), input);
    }

    #[test]
    fn a_reused_compressor_writes_what_a_fresh_one_does() {
        let inputs = [
            b"{\"a\":1,\"b\":[2,3]}\n".repeat(5_000),
            (0..100_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
            b"short".to_vec(),
        ];
        for level in [1, 6] {
            for input in &inputs {
                let mut out = Vec::new();
                let length = Compressor::new(level).compress(input, &mut out);
                // Twice: the second call reuses the state the first left.
                assert_eq!(deflate_chunk(input, level, true), out[..length]);
                assert_eq!(deflate_chunk(input, level, true), out[..length]);
            }
        }
    }

    /// The deflate backend (libdeflate) promises the same output on every
    /// CPU architecture, but not across its versions: this pins the bytes
    /// of every level, final and sync-flushed pieces alike, so an update
    /// that would change archives fails here first.
    #[test]
    fn deflated_bytes_are_pinned() {
        let input: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{{\"row\":{},\"v\":\"{}\"}}\n", i % 977, i % 13).into_bytes())
            .collect();
        let digests: Vec<String> = (1..=9)
            .map(|level| {
                let deflated = deflate(&input, level, true).pieces.concat();
                format!("{}:{:08x}", deflated.len(), crc32fast::hash(&deflated))
            })
            .collect();
        assert_eq!(digests, PINNED);
    }

    #[test]
    fn empty_input_is_a_valid_stream() {
        let deflated = deflate(&[], 6, true);
        assert!(inflate(&deflated.pieces).is_empty());
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let input = b"{\"a\":1,\"b\":[2,3]}\n".repeat(200_000);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let four = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let a = one.install(|| deflate(&input, 6, true).pieces.concat());
        let b = four.install(|| deflate(&input, 6, true).pieces.concat());
        assert_eq!(a, b);
    }
}
