//! Whole objects under one [`S3Location`]: a local file published by a
//! multipart upload that is completed only when every part is in (or
//! aborted), existence checks, deletion, and presigned GET links.
//!
//! An object appears at its key only when `CompleteMultipartUpload`
//! succeeds, which S3 makes atomic: before that, readers see the previous
//! object or none, never a part. Parts are read from the file one at a
//! time, so memory stays at one part however large the file.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{MultipartId, ObjectStoreExt, PutPayload};

use super::{block_on, S3Config, S3Error, S3Location};

/// S3's largest number of parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// The smallest part size used (S3's minimum is 5 MiB for all but the last part).
pub const MIN_PART_SIZE: u64 = 8 << 20;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 << 30;

/// The part size for a file of `len` bytes: at least `min` (itself at
/// least S3's 5 MiB), and large enough that the file fits in
/// [`MAX_PARTS`] parts, rounded up to whole MiB.
pub fn part_size_for(len: u64, min: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let needed = len.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(min.max(5 * MIB)).min(MAX_PART_SIZE)
}

/// Objects under one bucket and prefix.
#[derive(Clone)]
pub struct S3Objects {
    client: Arc<AmazonS3>,
    location: S3Location,
    min_part_size: u64,
    part_pause: Duration,
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects")
            .field("location", &self.location.to_string())
            .field("min_part_size", &self.min_part_size)
            .finish_non_exhaustive()
    }
}

/// Why an upload did not get its parts in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The local file could not be read.
    #[error("reading the file to upload failed")]
    Read(#[source] std::io::Error),
    /// The object store refused or did not answer.
    #[error(transparent)]
    Store(#[from] S3Error),
    /// The caller's cancel flag was set between parts.
    #[error("the upload was cancelled")]
    Cancelled,
}

impl S3Objects {
    /// Objects at `location`, reached with `config`.
    pub fn new(location: S3Location, config: &S3Config) -> Result<S3Objects, S3Error> {
        Ok(S3Objects {
            client: config.client(&location)?,
            location,
            min_part_size: MIN_PART_SIZE,
            part_pause: Duration::ZERO,
        })
    }

    /// The smallest part size (raised to S3's 5 MiB). Default 8 MiB.
    pub fn with_min_part_size(mut self, bytes: u64) -> S3Objects {
        self.min_part_size = bytes;
        self
    }

    /// Testing only: wait this long after each uploaded part, so a test
    /// can stop the server mid-upload. Default none.
    pub fn with_part_pause(mut self, pause: Duration) -> S3Objects {
        self.part_pause = pause;
        self
    }

    /// Where the objects are.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The client, for other requests.
    pub fn client(&self) -> &Arc<AmazonS3> {
        &self.client
    }

    /// Uploads `file` as the parts of a new multipart upload of `name`
    /// (under the prefix) and returns it, not yet completed: nothing is
    /// at the key until [`PendingUpload::complete`]. On any failure the
    /// upload is aborted ([`PendingUpload::abort`]) before returning.
    /// `cancel` is checked between parts.
    pub fn upload_parts(
        &self,
        name: &str,
        file: &Path,
        cancel: &AtomicBool,
    ) -> Result<PendingUpload, UploadError> {
        let mut reader = File::open(file).map_err(UploadError::Read)?;
        let len = reader.metadata().map_err(UploadError::Read)?.len();
        let part_size = part_size_for(len, self.min_part_size);
        let key = self.location.key(name);
        let id = block_on(self.client.create_multipart(&key)).map_err(S3Error::from)?;
        let mut upload = PendingUpload {
            objects: self.clone(),
            key,
            id,
            parts: Vec::new(),
            open: true,
        };
        match self.put_parts(&mut upload, &mut reader, len, part_size, cancel) {
            Ok(()) => Ok(upload),
            Err(err) => {
                upload.abort();
                Err(err)
            }
        }
    }

    fn put_parts(
        &self,
        upload: &mut PendingUpload,
        reader: &mut File,
        len: u64,
        part_size: u64,
        cancel: &AtomicBool,
    ) -> Result<(), UploadError> {
        let count = len.div_ceil(part_size).max(1);
        for index in 0..count {
            if cancel.load(Ordering::SeqCst) {
                return Err(UploadError::Cancelled);
            }
            let size = part_size.min(len - index * part_size);
            let mut part = vec![0; size as usize];
            reader.read_exact(&mut part).map_err(UploadError::Read)?;
            let payload = PutPayload::from(part);
            let put = self
                .client
                .put_part(&upload.key, &upload.id, index as usize, payload);
            upload.parts.push(block_on(put).map_err(S3Error::from)?);
            tracing::debug!(key = %upload.key, part = index + 1, parts = count, "archive part uploaded");
            if !self.part_pause.is_zero() {
                std::thread::sleep(self.part_pause);
            }
        }
        Ok(())
    }

    /// True when an object `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, S3Error> {
        match block_on(self.client.head(&self.location.key(name))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Deletes object `name`; an absent object is not an error.
    pub fn delete(&self, name: &str) -> Result<(), S3Error> {
        match block_on(self.client.delete(&self.location.key(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// A presigned GET of object `name` valid for `lifetime`, whose
    /// response names the download `file_name`
    /// (`response-content-disposition`, signed with the rest).
    pub fn presigned_get(
        &self,
        name: &str,
        file_name: &str,
        lifetime: Duration,
    ) -> Result<String, S3Error> {
        let disposition = format!(
            "attachment; filename=\"{}\"",
            file_name.replace(['"', '\\'], "_")
        );
        let options =
            SignedUrlOptions::default().with_query([("response-content-disposition", disposition)]);
        let key = self.location.key(name);
        let url = block_on(
            self.client
                .signed_url_opts(Method::GET, &key, lifetime, &options),
        )?;
        Ok(url.to_string())
    }
}

/// A multipart upload whose parts are in but which is not completed:
/// complete it to publish the object, or abort it. Dropped unfinished,
/// it is aborted.
pub struct PendingUpload {
    objects: S3Objects,
    key: ObjectPath,
    id: MultipartId,
    parts: Vec<PartId>,
    open: bool,
}

impl std::fmt::Debug for PendingUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpload")
            .field("key", &self.key.as_ref())
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl PendingUpload {
    /// How many parts were uploaded.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Completes the upload: the object appears at its key, whole. On
    /// failure the upload is aborted.
    pub fn complete(mut self) -> Result<(), S3Error> {
        let parts = std::mem::take(&mut self.parts);
        let done = block_on(
            self.objects
                .client
                .complete_multipart(&self.key, &self.id, parts),
        );
        match done {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            // Dropping `self` aborts it.
            Err(err) => Err(err.into()),
        }
    }

    /// Aborts the upload, so no part is kept. When the store cannot be
    /// reached, a background thread keeps trying (with backoff, for up to
    /// an hour) and logs `multipart upload aborted` once it succeeds.
    pub fn abort(mut self) {
        self.abort_now();
    }

    fn abort_now(&mut self) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let (client, key, id) = (
            Arc::clone(&self.objects.client),
            self.key.clone(),
            self.id.clone(),
        );
        match block_on(client.abort_multipart(&key, &id)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                tracing::info!(key = %key, "multipart upload aborted");
                return;
            }
            Err(_) => {}
        }
        std::thread::spawn(move || {
            let mut wait = Duration::from_millis(500);
            let mut waited = Duration::ZERO;
            while waited < Duration::from_secs(3600) {
                std::thread::sleep(wait);
                waited += wait;
                match block_on(client.abort_multipart(&key, &id)) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        tracing::info!(key = %key, "multipart upload aborted");
                        return;
                    }
                    Err(_) => wait = (wait * 2).min(Duration::from_secs(10)),
                }
            }
            tracing::warn!(key = %key, "multipart upload left open: the object store stayed unreachable");
        });
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        self.abort_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_archive_fits_in_ten_thousand_parts() {
        const MIB: u64 = 1 << 20;
        assert_eq!(part_size_for(0, MIN_PART_SIZE), 8 * MIB);
        assert_eq!(part_size_for(10 * MIB, MIN_PART_SIZE), 8 * MIB);
        assert_eq!(part_size_for(1, 0), 5 * MIB, "S3's minimum holds");
        for len in [80_000 * MIB, 80_000 * MIB + 1, 1 << 40, 5 << 40] {
            let part = part_size_for(len, MIN_PART_SIZE);
            assert!(len.div_ceil(part) <= MAX_PARTS, "{len} in parts of {part}");
            assert_eq!(part % MIB, 0);
            assert!(part <= MAX_PART_SIZE);
        }
        assert!(part_size_for(80_000 * MIB + 1, MIN_PART_SIZE) > 8 * MIB);
    }
}
