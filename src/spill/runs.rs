//! Sorted runs on disk and their k-way merge: the external sort behind a
//! build past its memory budget.
//!
//! Records are byte strings, each with one key per order (the two views
//! sort the same responses two ways) and a payload. A [`RunBuffer`] holds
//! them until its share of the budget is used, then [`RunBuffer::flush`]
//! writes one run per order: the records sorted by that order's key, as
//! `key length, payload length, key, payload` (lengths `u32` little-endian).
//! A [`Merge`] reads the runs of one order back in key order. Keys are
//! compared as bytes and must be unique within an order (every key of the
//! build ends in a unique id), so the merged order is total and the same
//! however the records were cut into runs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// Read and write buffer of each run file: with tens of runs merged at
/// once, a few megabytes in all.
const IO_BUFFER: usize = 128 * 1024;

/// Records waiting to be sorted into runs.
pub(crate) struct RunBuffer {
    /// Every record's keys then payload, back to back.
    bytes: Vec<u8>,
    /// Per record: where its bytes start, its keys' lengths, its payload's.
    records: Vec<Slot>,
    orders: usize,
}

#[derive(Clone)]
struct Slot {
    start: usize,
    key_lens: [u32; MAX_ORDERS],
    payload_len: u32,
}

/// The most orders one buffer sorts its records by.
pub(crate) const MAX_ORDERS: usize = 3;

impl RunBuffer {
    /// An empty buffer for records with `orders` keys each.
    pub(crate) fn new(orders: usize) -> RunBuffer {
        assert!(
            (1..=MAX_ORDERS).contains(&orders),
            "1 to {MAX_ORDERS} orders"
        );
        RunBuffer {
            bytes: Vec::new(),
            records: Vec::new(),
            orders,
        }
    }

    /// Adds a record: one key per order, then its payload.
    pub(crate) fn push(&mut self, keys: &[&[u8]], payload: &[u8]) {
        assert_eq!(keys.len(), self.orders, "one key per order");
        let mut key_lens = [0u32; MAX_ORDERS];
        let start = self.bytes.len();
        for (len, key) in key_lens.iter_mut().zip(keys) {
            *len = u32::try_from(key.len()).expect("keys are short");
            self.bytes.extend_from_slice(key);
        }
        self.bytes.extend_from_slice(payload);
        self.records.push(Slot {
            start,
            key_lens,
            payload_len: u32::try_from(payload.len()).expect("records under 4 GiB"),
        });
    }

    /// Bytes held, counting the bookkeeping: what the budget is checked
    /// against. Lengths, not capacities: a flushed buffer keeps its memory
    /// for the next run, which fills the same room.
    pub(crate) fn held(&self) -> usize {
        self.bytes.len() + self.records.len() * std::mem::size_of::<Slot>()
    }

    /// True when no record waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn key(&self, slot: &Slot, order: usize) -> &[u8] {
        let before: usize = slot.key_lens[..order].iter().map(|&l| l as usize).sum();
        let start = slot.start + before;
        &self.bytes[start..start + slot.key_lens[order] as usize]
    }

    fn payload(&self, slot: &Slot) -> &[u8] {
        let keys: usize = slot.key_lens[..self.orders]
            .iter()
            .map(|&l| l as usize)
            .sum();
        let start = slot.start + keys;
        &self.bytes[start..start + slot.payload_len as usize]
    }

    /// Writes the records as one run per order into `dir` (files named
    /// `name-<order>`), sorted by that order's key, with their payloads
    /// where `with_payload[order]` (an order only checked for repeats needs
    /// its keys alone). Returns the run files, one per order, and empties
    /// the buffer, keeping its memory.
    pub(crate) fn flush(
        &mut self,
        dir: &Path,
        name: &str,
        with_payload: &[bool],
    ) -> io::Result<Vec<PathBuf>> {
        let mut paths = Vec::with_capacity(self.orders);
        let mut order_of: Vec<u32> = (0..self.records.len() as u32).collect();
        for (order, &payload) in with_payload.iter().enumerate().take(self.orders) {
            order_of.par_sort_unstable_by(|&a, &b| {
                let (a, b) = (&self.records[a as usize], &self.records[b as usize]);
                self.key(a, order).cmp(self.key(b, order))
            });
            let path = dir.join(format!("{name}-{order}"));
            let mut out = BufWriter::with_capacity(IO_BUFFER, File::create(&path)?);
            for &i in &order_of {
                let slot = &self.records[i as usize];
                let key = self.key(slot, order);
                let data = if payload { self.payload(slot) } else { &[] };
                out.write_all(&(key.len() as u32).to_le_bytes())?;
                out.write_all(&(data.len() as u32).to_le_bytes())?;
                out.write_all(key)?;
                out.write_all(data)?;
            }
            out.into_inner().map_err(io::IntoInnerError::into_error)?;
            paths.push(path);
        }
        self.bytes.clear();
        self.records.clear();
        Ok(paths)
    }
}

/// One record read back from a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) payload: Vec<u8>,
}

/// The runs of one order merged: their records in key order.
pub(crate) struct Merge {
    readers: Vec<BufReader<File>>,
    /// The next record of each run not yet handed out, by key.
    heads: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    /// The payload of each run's head.
    payloads: Vec<Vec<u8>>,
}

impl Merge {
    /// Opens the runs; reads the first record of each.
    pub(crate) fn open(paths: &[PathBuf]) -> io::Result<Merge> {
        let mut merge = Merge {
            readers: Vec::with_capacity(paths.len()),
            heads: BinaryHeap::with_capacity(paths.len()),
            payloads: vec![Vec::new(); paths.len()],
        };
        for (run, path) in paths.iter().enumerate() {
            merge
                .readers
                .push(BufReader::with_capacity(IO_BUFFER, File::open(path)?));
            merge.advance(run)?;
        }
        Ok(merge)
    }

    /// Reads the next record of `run` into the heads, if it has one.
    fn advance(&mut self, run: usize) -> io::Result<()> {
        let reader = &mut self.readers[run];
        let mut lengths = [0u8; 8];
        match reader.read_exact(&mut lengths) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err),
        }
        let key_len = u32::from_le_bytes(lengths[..4].try_into().expect("4 bytes")) as usize;
        let payload_len = u32::from_le_bytes(lengths[4..].try_into().expect("4 bytes")) as usize;
        let mut key = vec![0; key_len];
        reader.read_exact(&mut key)?;
        let payload = &mut self.payloads[run];
        payload.resize(payload_len, 0);
        reader.read_exact(payload)?;
        self.heads.push(Reverse((key, run)));
        Ok(())
    }

    /// The next record in key order, `None` once every run is read.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        let Some(Reverse((key, run))) = self.heads.pop() else {
            return Ok(None);
        };
        let payload = std::mem::take(&mut self.payloads[run]);
        self.advance(run)?;
        Ok(Some(Record { key, payload }))
    }

    /// The key of the next record, without taking it.
    pub(crate) fn peek_key(&self) -> Option<&[u8]> {
        self.heads.peek().map(|Reverse((key, _))| key.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records with two keys each: the number forwards and backwards.
    fn records(n: u32) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let mixed = i.wrapping_mul(2_654_435_761);
                (
                    mixed.to_be_bytes().to_vec(),
                    (u32::MAX - mixed).to_be_bytes().to_vec(),
                    format!("payload {i}").into_bytes(),
                )
            })
            .collect()
    }

    fn merged(paths: &[PathBuf]) -> Vec<Record> {
        let mut merge = Merge::open(paths).unwrap();
        let mut out = Vec::new();
        while let Some(record) = merge.next_record().unwrap() {
            out.push(record);
        }
        out
    }

    #[test]
    fn runs_merge_into_key_order_whatever_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(1000);
        let mut expected: Vec<Record> = all
            .iter()
            .map(|(a, _, p)| Record {
                key: a.clone(),
                payload: p.clone(),
            })
            .collect();
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        for per_run in [1000, 333, 64, 1] {
            let mut buffer = RunBuffer::new(2);
            let (mut first, mut second) = (Vec::new(), Vec::new());
            for (i, (a, b, payload)) in all.iter().enumerate() {
                buffer.push(&[a, b], payload);
                if (i + 1) % per_run == 0 || i + 1 == all.len() {
                    let name = format!("run-{}", first.len());
                    let paths = buffer.flush(dir.path(), &name, &[true, false]).unwrap();
                    first.push(paths[0].clone());
                    second.push(paths[1].clone());
                }
            }
            assert_eq!(merged(&first), expected, "{per_run} records per run");
            // The second order is descending in the first key, without payloads.
            let backwards = merged(&second);
            assert_eq!(backwards.len(), all.len());
            assert!(backwards.windows(2).all(|w| w[0].key < w[1].key));
            assert!(backwards.iter().all(|r| r.payload.is_empty()));
            for path in first.iter().chain(&second) {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    #[test]
    fn a_key_that_prefixes_another_sorts_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = RunBuffer::new(1);
        for key in ["ab", "a", "abc", "b"] {
            buffer.push(&[key.as_bytes()], b"");
        }
        let mut paths = buffer.flush(dir.path(), "a", &[true]).unwrap();
        buffer.push(&[b"aa"], b"x");
        paths.extend(buffer.flush(dir.path(), "b", &[true]).unwrap());
        let mut merge = Merge::open(&paths).unwrap();
        assert_eq!(merge.peek_key(), Some(&b"a"[..]));
        let keys: Vec<String> = std::iter::from_fn(|| merge.next_record().unwrap())
            .map(|r| String::from_utf8(r.key).unwrap())
            .collect();
        assert_eq!(keys, ["a", "aa", "ab", "abc", "b"]);
    }

    #[test]
    fn an_empty_buffer_writes_empty_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = RunBuffer::new(1);
        assert!(buffer.is_empty());
        let paths = buffer.flush(dir.path(), "empty", &[true]).unwrap();
        assert!(merged(&paths).is_empty());
    }
}
