//! Parallel deflate, pigz-style: data is cut into fixed-size chunks, each
//! deflated on its own worker and ended with a sync flush (byte-aligned, no
//! final bit), the last one with a final block; joined in order they form
//! one valid deflate stream. CRC-32s are computed per chunk and combined.
//!
//! Chunk boundaries depend only on the data, never on thread count, so the
//! output is the same bytes on one thread or many.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;

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
    /// One compressor per worker thread, reset between chunks. A deflate
    /// state is a few hundred KB that a fresh one would allocate and zero
    /// for every chunk: for many small uploads that cost more than the
    /// compression itself. A reset state compresses exactly as a new one.
    static COMPRESSOR: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
}

/// Deflates one chunk with a fresh dictionary.
fn deflate_chunk(input: &[u8], level: u32, last: bool) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some((cached, compressor)) if *cached == level => compressor.reset(),
            _ => *slot = Some((level, Compress::new(Compression::new(level), false))),
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        deflate_with(compressor, input, last)
    })
}

fn deflate_with(compressor: &mut Compress, input: &[u8], last: bool) -> Vec<u8> {
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        let consumed = compressor.total_in() as usize;
        // Compressing into a Vec only fails on a corrupt compressor state.
        let status = compressor
            .compress_vec(&input[consumed..], &mut out, flush)
            .expect("deflate of an in-memory buffer");
        let all_in = compressor.total_in() as usize == input.len();
        let done = match (last, status) {
            (true, Status::StreamEnd) => true,
            (true, _) => false,
            // With a sync flush, output left unfilled means the flush is complete.
            (false, _) => all_in && out.len() < out.capacity(),
        };
        if done {
            return out;
        }
        out.reserve(out.capacity().max(4096));
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

    const PINNED: [&str; 4] = [
        "1550163:9b6fcf64",
        "972548:e5bddb7f",
        "950439:4d135832",
        "804315:4c212db8",
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
                let fresh = deflate_with(
                    &mut Compress::new(Compression::new(level), false),
                    input,
                    true,
                );
                // Twice: the second call reuses the state the first left.
                assert_eq!(deflate_chunk(input, level, true), fresh);
                assert_eq!(deflate_chunk(input, level, true), fresh);
            }
        }
    }

    /// The deflate backend (zlib-rs) promises the same output on every
    /// platform, but not across its versions: this pins the bytes, so an
    /// update that would change archives fails here first.
    #[test]
    fn deflated_bytes_are_pinned() {
        let input: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{{\"row\":{},\"v\":\"{}\"}}\n", i % 977, i % 13).into_bytes())
            .collect();
        let digests: Vec<String> = [1, 3, 6, 9]
            .iter()
            .map(|&level| {
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
