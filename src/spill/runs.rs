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

    /// Writes the run of one order: the records sorted by its key.
    fn write_run(
        &self,
        dir: &Path,
        name: &str,
        order: usize,
        payload: bool,
    ) -> io::Result<PathBuf> {
        // Sorted by the keys' first bytes as a number, which decides most
        // comparisons without reading the records; the keys are compared
        // whole only when those are equal (a shorter key is zero-padded, so
        // a key that prefixes another still sorts first).
        let mut order_of: Vec<(u128, u32)> = self
            .records
            .par_iter()
            .enumerate()
            .map(|(i, slot)| (key_prefix(self.key(slot, order)), i as u32))
            .collect();
        order_of.par_sort_unstable_by(|&(prefix_a, a), &(prefix_b, b)| {
            prefix_a.cmp(&prefix_b).then_with(|| {
                let (a, b) = (&self.records[a as usize], &self.records[b as usize]);
                self.key(a, order).cmp(self.key(b, order))
            })
        });
        let path = dir.join(name);
        let mut out = BufWriter::with_capacity(IO_BUFFER, File::create(&path)?);
        for &(_, i) in &order_of {
            let slot = &self.records[i as usize];
            let key = self.key(slot, order);
            let data = if payload { self.payload(slot) } else { &[] };
            out.write_all(&(key.len() as u32).to_le_bytes())?;
            out.write_all(&(data.len() as u32).to_le_bytes())?;
            out.write_all(key)?;
            out.write_all(data)?;
        }
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(path)
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
        // The orders are sorted and written at once, each on its own worker.
        let paths = with_payload
            .par_iter()
            .enumerate()
            .take(self.orders)
            .map(|(order, &payload)| {
                self.write_run(dir, &format!("{name}-{order}"), order, payload)
            })
            .collect::<io::Result<Vec<PathBuf>>>()?;
        self.bytes.clear();
        self.records.clear();
        Ok(paths)
    }
}

/// The first 16 bytes of `key` as a big-endian number, zero-padded: its
/// order is the keys' byte order wherever two prefixes differ.
fn key_prefix(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let len = key.len().min(16);
    bytes[..len].copy_from_slice(&key[..len]);
    u128::from_be_bytes(bytes)
}

/// The runs of one order merged: their records in key order.
///
/// A tournament of losers picks the smallest head: taking a record costs
/// one comparison per level of the tree (log2 of the runs), each run's
/// head lives in buffers reused for every record, so the merge allocates
/// nothing per record however many runs it reads.
pub(crate) struct Merge {
    runs: Vec<RunReader>,
    /// `losers[0]` is the run whose head is smallest; `losers[1..]` are the
    /// inner nodes of the tournament, each holding the run that lost there
    /// (the leaves, run `r` at node `runs.len() + r`, are implicit).
    losers: Vec<usize>,
}

/// One run being read, and its head record.
struct RunReader {
    reader: BufReader<File>,
    key: Vec<u8>,
    payload: Vec<u8>,
    /// False once the run is read to its end (its head is then past any key).
    live: bool,
}

impl RunReader {
    /// Reads the next record into the head, or marks the run done.
    fn advance(&mut self) -> io::Result<()> {
        let mut lengths = [0u8; 8];
        match self.reader.read_exact(&mut lengths) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                self.live = false;
                return Ok(());
            }
            Err(err) => return Err(err),
        }
        let key_len = u32::from_le_bytes(lengths[..4].try_into().expect("4 bytes")) as usize;
        let payload_len = u32::from_le_bytes(lengths[4..].try_into().expect("4 bytes")) as usize;
        self.key.resize(key_len, 0);
        self.reader.read_exact(&mut self.key)?;
        self.payload.resize(payload_len, 0);
        self.reader.read_exact(&mut self.payload)
    }
}

impl Merge {
    /// Opens the runs; reads the first record of each.
    pub(crate) fn open(paths: &[PathBuf]) -> io::Result<Merge> {
        let mut runs = Vec::with_capacity(paths.len());
        for path in paths {
            let mut run = RunReader {
                reader: BufReader::with_capacity(IO_BUFFER, File::open(path)?),
                key: Vec::new(),
                payload: Vec::new(),
                live: true,
            };
            run.advance()?;
            runs.push(run);
        }
        let mut merge = Merge {
            losers: vec![0; runs.len().max(1)],
            runs,
        };
        if !merge.runs.is_empty() {
            merge.losers[0] = merge.play(1);
        }
        Ok(merge)
    }

    /// True when run `a`'s head comes before run `b`'s: read runs last,
    /// equal keys (only from a damaged run) by run.
    fn before(&self, a: usize, b: usize) -> bool {
        let (ra, rb) = (&self.runs[a], &self.runs[b]);
        match (ra.live, rb.live) {
            (true, true) => (ra.key.as_slice(), a) < (rb.key.as_slice(), b),
            (true, false) => true,
            (false, true) => false,
            (false, false) => a < b,
        }
    }

    /// The winner of the subtree at `node`, its losers recorded on the way.
    fn play(&mut self, node: usize) -> usize {
        let leaves = self.runs.len();
        if node >= leaves {
            return node - leaves;
        }
        let (left, right) = (self.play(2 * node), self.play(2 * node + 1));
        let (winner, loser) = if self.before(left, right) {
            (left, right)
        } else {
            (right, left)
        };
        self.losers[node] = loser;
        winner
    }

    /// The key and payload of the next record in key order handed to
    /// `take`, which runs before the record's run moves on; `None` once
    /// every run is read.
    pub(crate) fn pop_with<T>(
        &mut self,
        take: impl FnOnce(&[u8], &[u8]) -> T,
    ) -> io::Result<Option<T>> {
        let Some(&winner) = self.losers.first() else {
            return Ok(None);
        };
        let Some(run) = self.runs.get_mut(winner).filter(|run| run.live) else {
            return Ok(None);
        };
        let taken = take(&run.key, &run.payload);
        run.advance()?;
        // Replay the winner's way up to the root.
        let mut winner = winner;
        let mut node = (winner + self.runs.len()) / 2;
        while node >= 1 {
            if self.before(self.losers[node], winner) {
                std::mem::swap(&mut self.losers[node], &mut winner);
            }
            node /= 2;
        }
        self.losers[0] = winner;
        Ok(Some(taken))
    }

    /// The key of the next record, without taking it.
    pub(crate) fn peek_key(&self) -> Option<&[u8]> {
        let run = self.runs.get(*self.losers.first()?)?;
        run.live.then_some(run.key.as_slice())
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

    /// One record read back from a run.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Record {
        key: Vec<u8>,
        payload: Vec<u8>,
    }

    fn next_record(merge: &mut Merge) -> Option<Record> {
        merge
            .pop_with(|key, payload| Record {
                key: key.to_vec(),
                payload: payload.to_vec(),
            })
            .unwrap()
    }

    fn merged(paths: &[PathBuf]) -> Vec<Record> {
        let mut merge = Merge::open(paths).unwrap();
        std::iter::from_fn(|| next_record(&mut merge)).collect()
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
        let keys: Vec<String> = std::iter::from_fn(|| next_record(&mut merge))
            .map(|r| String::from_utf8(r.key).unwrap())
            .collect();
        assert_eq!(keys, ["a", "aa", "ab", "abc", "b"]);
    }

    #[test]
    fn keys_past_the_sorted_prefix_and_zero_bytes_keep_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let long = "0123456789abcdef";
        let mut keys: Vec<Vec<u8>> = vec![
            format!("{long}z").into_bytes(),
            b"ab\0".to_vec(),
            format!("{long}a").into_bytes(),
            b"ab".to_vec(),
            long.as_bytes().to_vec(),
            b"ab\0\0".to_vec(),
            format!("{long}az").into_bytes(),
        ];
        let mut buffer = RunBuffer::new(1);
        for key in &keys {
            buffer.push(&[key], b"");
        }
        let paths = buffer.flush(dir.path(), "k", &[true]).unwrap();
        keys.sort();
        let sorted: Vec<Vec<u8>> = merged(&paths).into_iter().map(|r| r.key).collect();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn any_number_of_runs_merges_with_empty_ones_among_them() {
        let dir = tempfile::tempdir().unwrap();
        for runs in 1..=9u32 {
            let mut buffer = RunBuffer::new(1);
            let mut paths = Vec::new();
            let mut expected = Vec::new();
            for run in 0..runs {
                // Run `run` holds the numbers equal to it modulo `runs`,
                // the last run none at all.
                let count = if run + 1 == runs && runs > 1 { 0 } else { 50 };
                for i in 0..count {
                    let key = (i * runs + run).to_be_bytes();
                    buffer.push(&[&key], &key[2..]);
                    expected.push(key.to_vec());
                }
                let name = format!("{runs}-{run}");
                paths.extend(buffer.flush(dir.path(), &name, &[true]).unwrap());
            }
            expected.sort();
            let records = merged(&paths);
            let keys: Vec<Vec<u8>> = records.iter().map(|r| r.key.clone()).collect();
            assert_eq!(keys, expected, "{runs} runs");
            assert!(records.iter().all(|r| r.payload == r.key[2..]));
        }
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
