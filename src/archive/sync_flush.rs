//! Turns a complete raw deflate stream into a piece that another can follow.
//!
//! libdeflate compresses a whole buffer into one complete stream: its last
//! block carries the "final" bit, and nothing can follow it. The chunks
//! [`super::deflate`] joins need the stream a streaming compressor ends with
//! a sync flush instead: no final bit, then an empty stored block that
//! brings the stream to a byte boundary. libdeflate does not say where its
//! last block starts, so [`unfinalize`] walks the blocks (decoding their
//! Huffman codes, writing no output), clears the final bit of the last one
//! and appends the empty stored block, as zlib's `Z_SYNC_FLUSH` writes it.
//! Walking costs a small fraction of compressing: no match is copied.

/// Extra bits of the length codes 257..=285.
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// Extra bits of the literal/length symbols 0..=285 (literals and the
/// end of block have none), as the literal/length tables hold them.
const LENGTH_EXTRA_OF_SYMBOL: [u8; 286] = {
    let mut extra = [0u8; 286];
    let mut i = 0;
    while i < LENGTH_EXTRA.len() {
        extra[257 + i] = LENGTH_EXTRA[i];
        i += 1;
    }
    extra
};

/// Extra bits of the distance codes 0..=29.
const DISTANCE_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// The order in which a dynamic block lists its code-length code lengths.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The empty stored block of a sync flush, from the byte boundary on:
/// LEN 0 and its complement.
const EMPTY_STORED_LENGTHS: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why a stream could not be walked: only a stream that is not valid
/// deflate (never libdeflate's output) gets one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MalformedStream;

/// Clears the final bit of `stream`'s last block, drops what follows that
/// block, and appends an empty stored block: the stream then ends on a byte
/// boundary and inflates to the same bytes when another stream's blocks
/// follow it.
pub(crate) fn unfinalize(stream: &mut Vec<u8>) -> Result<(), MalformedStream> {
    let (last_start, end) = last_block(stream)?;
    stream[last_start / 8] &= !(1 << (last_start % 8));
    // The stored block's three header bits (not final, type 00) are zeros,
    // then zeros up to the byte boundary, then its lengths.
    stream.truncate(end.div_ceil(8));
    if end % 8 != 0 {
        let used = (1u8 << (end % 8)) - 1;
        *stream.last_mut().expect("end > 0") &= used;
    }
    if end % 8 == 0 || end % 8 > 5 {
        stream.push(0);
    }
    stream.extend_from_slice(&EMPTY_STORED_LENGTHS);
    Ok(())
}

/// The bit positions where the final block starts and where it ends.
fn last_block(stream: &[u8]) -> Result<(usize, usize), MalformedStream> {
    let mut bits = BitReader::new(stream);
    let mut tables = Tables::default();
    loop {
        let start = bits.position;
        let is_final = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => {
                bits.align();
                let length = bits.take(16)?;
                if bits.take(16)? != length ^ 0xffff {
                    return Err(MalformedStream);
                }
                bits.skip(8 * length as usize)?;
            }
            1 => {
                tables.fixed();
                tables.skip_symbols(&mut bits)?;
            }
            2 => {
                tables.dynamic(&mut bits)?;
                tables.skip_symbols(&mut bits)?;
            }
            _ => return Err(MalformedStream),
        }
        if is_final {
            return Ok((start, bits.position));
        }
    }
}

/// Reads a deflate stream's bits, least significant first.
struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, position: 0 }
    }

    /// The next 56 bits or more without consuming them, zeros past the end.
    fn peek(&self) -> u64 {
        let byte = self.position / 8;
        let word = match self.bytes.get(byte..byte + 8) {
            Some(eight) => u64::from_le_bytes(eight.try_into().expect("8 bytes")),
            None => {
                let mut eight = [0u8; 8];
                let rest = self.bytes.get(byte..).unwrap_or(&[]);
                eight[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(eight)
            }
        };
        word >> (self.position % 8)
    }

    /// Consumes `count` bits, failing when the stream ends before them.
    fn skip(&mut self, count: usize) -> Result<(), MalformedStream> {
        self.position += count;
        if self.position > self.bytes.len() * 8 {
            return Err(MalformedStream);
        }
        Ok(())
    }

    /// Reads `count` (at most 16) bits as a number.
    fn take(&mut self, count: u32) -> Result<u32, MalformedStream> {
        let value = (self.peek() & ((1 << count) - 1)) as u32;
        self.skip(count as usize)?;
        Ok(value)
    }

    fn align(&mut self) {
        self.position = self.position.div_ceil(8) * 8;
    }
}

/// Bits of a code's first lookup: shorter codes resolve in one step, longer
/// ones through a second table. 10 keeps the first table in the L1 cache.
const FIRST_BITS: u32 = 10;

/// Marks a first-level entry that points at a second-level table.
const LINK: u32 = 1 << 31;

/// The extra-bits count of a symbol that is coded but must not occur
/// (literal/length 286 and 287, distance 30 and 31).
const INVALID: u32 = 0xff;

/// The most bits one symbol and its extra bits take: a distance code of 15
/// bits and 13 extra bits.
const MAX_SYMBOL_BITS: u32 = 28;

/// A canonical Huffman code as lookup tables indexed by the stream's next
/// bits. A symbol's entry is `symbol << 16 | extra << 8 | length` (0: no
/// code matches), where `extra` is the count of extra bits that follow the
/// symbol's code ([`INVALID`]: a symbol no stream may use); a link is
/// `LINK | offset << 8 | bits` for a second table at `offset` in the same
/// vector, indexed by the `bits` after the first ones.
#[derive(Default)]
struct Code {
    entries: Vec<u32>,
    first_bits: u32,
}

impl Code {
    /// Builds the tables from each symbol's code length (0: not used).
    fn build(&mut self, lengths: &[u8]) -> Result<(), MalformedStream> {
        self.build_with_extra(lengths, &[])
    }

    /// Builds the tables, each symbol's entry also holding the count of
    /// extra bits that follow its code: `extra[symbol]`, [`INVALID`] past
    /// the end of `extra` (none at all when `extra` is empty).
    fn build_with_extra(&mut self, lengths: &[u8], extra: &[u8]) -> Result<(), MalformedStream> {
        let mut count = [0u16; 16];
        for &length in lengths {
            count[length as usize] += 1;
        }
        count[0] = 0;
        let max = (1..16).rev().find(|&l| count[l] > 0).unwrap_or(0) as u32;
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for length in 1..16 {
            code = (code + count[length - 1] as u32) << 1;
            next[length] = code;
        }
        // Over-subscribed lengths would give codes longer than their length.
        if max > 0 && next[max as usize] + count[max as usize] as u32 > 1 << max {
            return Err(MalformedStream);
        }
        let first = max.min(FIRST_BITS);
        let second = max - first;
        self.first_bits = first;
        self.entries.clear();
        self.entries.resize(1 << first, 0);
        for (symbol, &length) in lengths.iter().enumerate() {
            if length == 0 {
                continue;
            }
            let length = length as u32;
            let reversed = next[length as usize].reverse_bits() >> (32 - length);
            next[length as usize] += 1;
            let extra = match extra.get(symbol) {
                _ if extra.is_empty() => 0,
                Some(&bits) => bits as u32,
                None => INVALID,
            };
            let entry = (symbol as u32) << 16 | extra << 8 | length;
            if length <= first {
                for index in (reversed as usize..1 << first).step_by(1 << length) {
                    self.entries[index] = entry;
                }
                continue;
            }
            // A code is no prefix of another, so this slot holds no symbol.
            let prefix = (reversed & ((1 << first) - 1)) as usize;
            let offset = match self.entries[prefix] {
                link if link & LINK != 0 => ((link & !LINK) >> 8) as usize,
                _ => {
                    let offset = self.entries.len();
                    self.entries.resize(offset + (1 << second), 0);
                    self.entries[prefix] = LINK | (offset as u32) << 8 | second;
                    offset
                }
            };
            let rest = (reversed >> first) as usize;
            for index in (rest..1 << second).step_by(1 << (length - first)) {
                self.entries[offset + index] = entry;
            }
        }
        Ok(())
    }

    /// Reads one symbol.
    fn decode(&self, bits: &mut BitReader<'_>) -> Result<u16, MalformedStream> {
        let entry = self.entry(bits.peek())?;
        bits.skip((entry & 0xff) as usize)?;
        Ok((entry >> 16) as u16)
    }

    /// The entry of the symbol whose code starts `ahead`'s bits.
    #[inline(always)]
    fn entry(&self, ahead: u64) -> Result<u32, MalformedStream> {
        let mut entry = self.entries[ahead as usize & ((1 << self.first_bits) - 1)];
        if entry & LINK != 0 {
            let offset = ((entry & !LINK) >> 8) as usize;
            let index = (ahead >> self.first_bits) as usize & ((1 << (entry & 0xff)) - 1);
            entry = *self.entries.get(offset + index).ok_or(MalformedStream)?;
        }
        if entry & 0xff == 0 {
            return Err(MalformedStream);
        }
        Ok(entry)
    }
}

/// The two codes of the current block, their tables reused across blocks.
#[derive(Default)]
struct Tables {
    literal_length: Code,
    distance: Code,
    code_lengths: Code,
    lengths: Vec<u8>,
}

impl Tables {
    /// The codes of a block of type 1.
    fn fixed(&mut self) {
        self.lengths.clear();
        self.lengths.resize(144, 8);
        self.lengths.resize(256, 9);
        self.lengths.resize(280, 7);
        self.lengths.resize(288, 8);
        self.literal_length
            .build_with_extra(&self.lengths, &LENGTH_EXTRA_OF_SYMBOL)
            .expect("the fixed code is complete");
        self.distance
            .build_with_extra(&[5; 32], &DISTANCE_EXTRA)
            .expect("the fixed code is complete");
    }

    /// Reads the codes of a block of type 2.
    fn dynamic(&mut self, bits: &mut BitReader<'_>) -> Result<(), MalformedStream> {
        let literal_codes = bits.take(5)? as usize + 257;
        let distance_codes = bits.take(5)? as usize + 1;
        let length_codes = bits.take(4)? as usize + 4;
        let mut code_length_lengths = [0u8; 19];
        for &symbol in &CODE_LENGTH_ORDER[..length_codes] {
            code_length_lengths[symbol] = bits.take(3)? as u8;
        }
        self.code_lengths.build(&code_length_lengths)?;
        let total = literal_codes + distance_codes;
        self.lengths.clear();
        while self.lengths.len() < total {
            let (value, repeat) = match self.code_lengths.decode(bits)? {
                length @ 0..=15 => (length as u8, 1),
                16 => {
                    let previous = *self.lengths.last().ok_or(MalformedStream)?;
                    (previous, 3 + bits.take(2)? as usize)
                }
                17 => (0, 3 + bits.take(3)? as usize),
                _ => (0, 11 + bits.take(7)? as usize),
            };
            if self.lengths.len() + repeat > total {
                return Err(MalformedStream);
            }
            self.lengths.extend(std::iter::repeat_n(value, repeat));
        }
        self.literal_length
            .build_with_extra(&self.lengths[..literal_codes], &LENGTH_EXTRA_OF_SYMBOL)?;
        self.distance
            .build_with_extra(&self.lengths[literal_codes..], &DISTANCE_EXTRA)
    }

    /// Reads a block's symbols up to its end-of-block code. Each symbol's
    /// code and extra bits are skipped in one step, and one load of the
    /// stream serves symbols until fewer bits than the longest are left.
    fn skip_symbols(&self, bits: &mut BitReader<'_>) -> Result<(), MalformedStream> {
        let end = bits.bytes.len() * 8;
        let mut ahead = 0u64;
        let mut available = 0u32;
        loop {
            if available < MAX_SYMBOL_BITS {
                // Past the end the reader gives zeros, which decode: stop
                // there rather than walk them.
                if bits.position > end {
                    return Err(MalformedStream);
                }
                ahead = bits.peek();
                available = 56;
            }
            let entry = self.literal_length.entry(ahead)?;
            let used = (entry & 0xff) + (entry >> 8 & 0xff);
            match entry >> 16 {
                0..=255 => {}
                256 => {
                    bits.skip((entry & 0xff) as usize)?;
                    return Ok(());
                }
                _ if entry >> 8 & 0xff == INVALID => return Err(MalformedStream),
                _ => {
                    ahead >>= used;
                    available -= used;
                    bits.position += used as usize;
                    if available < MAX_SYMBOL_BITS {
                        if bits.position > end {
                            return Err(MalformedStream);
                        }
                        ahead = bits.peek();
                        available = 56;
                    }
                    let entry = self.distance.entry(ahead)?;
                    if entry >> 8 & 0xff == INVALID {
                        return Err(MalformedStream);
                    }
                    let used = (entry & 0xff) + (entry >> 8 & 0xff);
                    ahead >>= used;
                    available -= used;
                    bits.position += used as usize;
                    continue;
                }
            }
            ahead >>= used;
            available -= used;
            bits.position += used as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(stream)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn compress(input: &[u8], level: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let length = super::super::deflate::Compressor::new(level).compress(input, &mut out);
        out.truncate(length);
        out
    }

    /// Inputs that make libdeflate write each block type: stored (random
    /// bytes), fixed (tiny), dynamic (text), and several blocks per stream.
    fn inputs() -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_u32;
        let random: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("{{\"row\":{},\"v\":\"{}\"}}\n", i % 977, i % 13).into_bytes())
            .collect();
        let mut mixed = text.clone();
        mixed.extend_from_slice(&random);
        mixed.extend_from_slice(&text);
        vec![
            Vec::new(),
            b"a".to_vec(),
            b"hello".to_vec(),
            random,
            text,
            mixed,
        ]
    }

    #[test]
    fn unfinalized_streams_join_into_one() {
        for level in [1, 2, 6, 9] {
            let inputs = inputs();
            let mut joined = Vec::new();
            for input in &inputs {
                let mut piece = compress(input, level);
                unfinalize(&mut piece).unwrap();
                assert_eq!(&piece[piece.len() - 4..], EMPTY_STORED_LENGTHS);
                joined.extend_from_slice(&piece);
            }
            joined.extend_from_slice(&compress(b"the end", level));
            let mut expected = inputs.concat();
            expected.extend_from_slice(b"the end");
            assert_eq!(inflate(&joined), expected, "level {level}");
        }
    }

    #[test]
    fn the_final_bit_is_found_in_every_block_type() {
        // The last block of each stream is cleared and nothing else: the
        // stream alone no longer ends, so inflating it must stop short.
        for input in inputs() {
            let complete = compress(&input, 6);
            let mut piece = complete.clone();
            unfinalize(&mut piece).unwrap();
            let (start, _) = last_block(&complete).unwrap();
            assert_eq!(complete[start / 8] & (1 << (start % 8)), 1 << (start % 8));
            assert_eq!(piece[start / 8] & (1 << (start % 8)), 0);
            let mut decoder = flate2::Decompress::new(false);
            let mut out = Vec::with_capacity(input.len() + 16);
            let status = decoder
                .decompress_vec(&piece, &mut out, flate2::FlushDecompress::None)
                .unwrap();
            assert_ne!(status, flate2::Status::StreamEnd);
            assert_eq!(out, input);
        }
    }

    #[test]
    fn codes_longer_than_the_first_lookup_decode() {
        // Lengths 1, 2, ..., 15, 15: symbol i's code is i ones then a zero,
        // the last is 15 ones; codes go into the stream most significant
        // bit first.
        let lengths: Vec<u8> = (1..=15).chain([15]).collect();
        let mut code = Code::default();
        code.build(&lengths).unwrap();
        for symbol in 0..16u16 {
            let length = lengths[symbol as usize] as usize;
            let ones = if symbol == 15 { 15 } else { length - 1 };
            let stream = (((1u32 << ones) - 1) | 0xa5 << length).to_le_bytes();
            let mut bits = BitReader::new(&stream);
            assert_eq!(code.decode(&mut bits), Ok(symbol));
            assert_eq!(bits.position, length);
            assert_eq!(bits.take(8), Ok(0xa5));
        }
        // Lengths that would need more codes than fit are refused.
        assert_eq!(code.build(&[1, 1, 1]), Err(MalformedStream));
    }

    /// A final fixed block of the given codes (each `(code, length)`,
    /// written most significant bit first as Huffman codes are; extra bits
    /// here are all zeros, the same either way), then the end of block.
    fn fixed_block(codes: &[(u32, u32)]) -> Vec<u8> {
        let mut bits = vec![1, 1, 0];
        for &(code, length) in codes.iter().chain(&[(0, 7)]) {
            bits.extend((0..length).rev().map(|i| (code >> i) & 1));
        }
        bits.chunks(8)
            .map(|byte| byte.iter().enumerate().map(|(i, b)| (b << i) as u8).sum())
            .collect()
    }

    #[test]
    fn a_stream_that_is_not_deflate_is_refused() {
        // Block type 3 is reserved.
        assert_eq!(unfinalize(&mut vec![0b111]), Err(MalformedStream));
        // A stored block whose length and complement disagree.
        assert_eq!(
            unfinalize(&mut vec![0b001, 5, 0, 5, 0]),
            Err(MalformedStream)
        );
        // Fixed blocks with a literal/length symbol (286) or a distance
        // symbol (30) that is coded but must never occur; a valid one
        // around the same bits ends as expected.
        assert_eq!(
            unfinalize(&mut fixed_block(&[(0b1100_0110, 8)])),
            Err(MalformedStream)
        );
        let distance_30 = [(0b000_0001, 7), (0b11110, 5)];
        assert_eq!(
            unfinalize(&mut fixed_block(&distance_30)),
            Err(MalformedStream)
        );
        let distance_29 = [(0b000_0001, 7), (0b11101, 5), (0, 13)];
        assert_eq!(unfinalize(&mut fixed_block(&distance_29)), Ok(()));
        // A stream cut short.
        let mut cut = compress(&inputs()[4], 6);
        cut.truncate(cut.len() / 2);
        assert_eq!(unfinalize(&mut cut), Err(MalformedStream));
    }
}
