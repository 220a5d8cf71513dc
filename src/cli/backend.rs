//! What `serve` and `worker` share: where jobs, archives and dumps live,
//! how builds are leased, and the engine opened from those flags.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use batch_export::jobs::{
    BuildJob, Builder, Catalog, DumpBuilder, JobError, Jobs, JobsConfig, ReusePolicy, StoreSpec,
    SystemClock,
};
#[cfg(feature = "s3")]
use batch_export::s3::{S3Config, S3Location, S3Objects};

/// The job store, folders and worker settings of `serve` and `worker`.
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// The data folder: one dump per subfolder (each with a batch.json),
    /// or s3://BUCKET/PREFIX: one dump per prefix under it (S3 endpoint
    /// and credentials from the AWS_* variables).
    #[arg(long, value_name = "DIR|S3_URL")]
    pub data: PathBuf,
    /// Where the SQLite store, archives, the signing secret and the
    /// default token file are kept (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".batch-export")]
    pub state: PathBuf,
    /// The job store: sqlite:PATH or postgres://USER@HOST:PORT/DB
    /// [default: sqlite:<state>/jobs.sqlite3].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// Where archives are kept: a folder, or s3://BUCKET/PREFIX (server
    /// and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP)
    /// [default: <state>/exports].
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub objects: Option<String>,
    /// Seconds a failing object-storage request is retried before the
    /// upload (and its job) fails [default: 180].
    #[arg(long, value_name = "N")]
    pub s3_retry_seconds: Option<u64>,
    /// Seconds a worker's lease on a job lasts without renewal; renewed
    /// every third of that while building.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub lease_seconds: u64,
    /// Milliseconds an idle worker waits before looking for jobs of other
    /// processes again.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub poll_ms: u64,
    /// Hours a complete export is reused while its batch is unchanged.
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    pub max_age_hours: f64,
    /// The key of `?pseudonymise=true` exports, in FILE (its bytes, less
    /// trailing line ends); every process building such jobs needs the
    /// same one. Without it a serve answers such requests 400.
    #[arg(long, value_name = "FILE")]
    pub pseudonymise_key: Option<PathBuf>,
    /// The most memory one build may use for a dump's records, e.g. 400M
    /// or 2G; a bigger dump is built by spilling sorted runs beside its
    /// archive, with the same bytes.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = super::parse_memory_size)]
    pub memory_budget: u64,
    /// Testing only: wait this long before each build (so a test can stop
    /// a worker mid-build).
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    pub test_build_delay_ms: u64,
    /// Testing only: wait this long after each uploaded part (so a test
    /// can stop the object store mid-upload).
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    pub test_upload_pause_ms: u64,
}

impl BackendArgs {
    /// Opens the job engine with `workers` build threads, reusing complete
    /// exports as `reuse` says.
    pub fn open(&self, workers: usize, reuse: ReusePolicy) -> anyhow::Result<Jobs> {
        std::fs::create_dir_all(&self.state)
            .with_context(|| format!("creating state folder {}", self.state.display()))?;
        let max_age = Duration::try_from_secs_f64(self.max_age_hours * 3600.0)
            .context("--max-age-hours must be a non-negative number")?;
        let mut config = JobsConfig::new(&self.state)
            .max_age(max_age)
            .workers(workers)
            .lease(Duration::from_secs(self.lease_seconds.max(1)))
            .poll_interval(Duration::from_millis(self.poll_ms))
            .memory_budget(self.memory_budget)
            .reuse(reuse);
        if let Some(path) = &self.pseudonymise_key {
            // Read once, kept in memory only: never logged, never stored.
            config = config.pseudonym_key(super::read_key_file(path)?);
        }
        let dumps: Arc<dyn Builder> = match self.s3_data()? {
            // Jobs record a dump's name under the prefix: no root to strip.
            #[cfg(feature = "s3")]
            Some(data) => Arc::new(batch_export::jobs::S3DumpBuilder::new(data)),
            _ => {
                config = config.data_root(&self.data);
                Arc::new(DumpBuilder)
            }
        };
        if let Some(store) = &self.store {
            config = config.store(store.parse::<StoreSpec>()?);
        }
        if let Some(objects) = &self.objects {
            config = self.objects(config, objects)?;
        }
        let builder: Arc<dyn Builder> = match self.test_build_delay_ms {
            0 => dumps,
            ms => Arc::new(Delayed(Duration::from_millis(ms), dumps)),
        };
        let spec = config.store_spec();
        Jobs::open(config, builder, Arc::new(SystemClock))
            .with_context(|| format!("opening the job store {}", describe(&spec)))
    }
}

impl BackendArgs {
    /// The batches `--data` holds.
    pub fn catalog(&self) -> anyhow::Result<Catalog> {
        match self.s3_data()? {
            #[cfg(feature = "s3")]
            Some(data) => Ok(Catalog::s3(data)),
            _ => Ok(Catalog::new(&self.data)),
        }
    }

    /// The dumps of `--data s3://...`, with the S3 endpoint and
    /// credentials of the AWS_* variables; None for a folder.
    #[cfg(feature = "s3")]
    fn s3_data(&self) -> anyhow::Result<Option<batch_export::jobs::S3Dumps>> {
        let text = self.data.to_string_lossy();
        if !S3Location::is_s3_url(&text) {
            return Ok(None);
        }
        let location = S3Location::parse(&text).context("--data")?;
        let client = self
            .s3_config()
            .client(&location)
            .with_context(|| format!("connecting to {location}"))?;
        Ok(Some(batch_export::jobs::S3Dumps::new(client, location)))
    }

    /// Without feature `s3`, `--data` is a folder.
    #[cfg(not(feature = "s3"))]
    fn s3_data(&self) -> anyhow::Result<Option<std::convert::Infallible>> {
        anyhow::ensure!(
            !self.data.to_string_lossy().starts_with("s3://"),
            "--data s3://... needs a build with the `s3` feature"
        );
        Ok(None)
    }

    /// How `--objects` and `--data` reach S3: the AWS_* variables and
    /// `--s3-retry-seconds`.
    #[cfg(feature = "s3")]
    fn s3_config(&self) -> S3Config {
        let mut s3 = S3Config::from_vars(|name| std::env::var(name).ok());
        s3.retry_timeout = self.s3_retry_seconds.map(Duration::from_secs);
        s3
    }

    /// `config` publishing archives to `objects`: a folder or an S3 location.
    fn objects(&self, config: JobsConfig, objects: &str) -> anyhow::Result<JobsConfig> {
        if !objects.starts_with("s3://") {
            anyhow::ensure!(
                !objects.contains("://"),
                "--objects takes a folder or s3://BUCKET/PREFIX"
            );
            return Ok(config.objects_dir(objects));
        }
        self.objects_s3(config, objects)
    }

    /// `config` publishing archives to the S3 location `objects`.
    #[cfg(feature = "s3")]
    fn objects_s3(&self, config: JobsConfig, objects: &str) -> anyhow::Result<JobsConfig> {
        let location = S3Location::parse(objects).context("--objects")?;
        let store = S3Objects::new(location, &self.s3_config())
            .context("--objects: the S3 client")?
            .with_part_pause(Duration::from_millis(self.test_upload_pause_ms));
        Ok(config.objects_s3(store))
    }

    /// Without feature `s3`, `--objects` is a folder.
    #[cfg(not(feature = "s3"))]
    fn objects_s3(&self, _: JobsConfig, _: &str) -> anyhow::Result<JobsConfig> {
        anyhow::bail!("--objects s3://... needs a build with the `s3` feature")
    }
}

/// The store, named without any password of its connection string.
fn describe(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Sqlite(path) => path.display().to_string(),
        StoreSpec::Postgres(_) => "(PostgreSQL)".to_owned(),
    }
}

/// Waits before building, giving up early when cancelled, then builds
/// with the builder it wraps.
struct Delayed(Duration, Arc<dyn Builder>);

impl Builder for Delayed {
    fn fingerprint(&self, dump_dir: &std::path::Path) -> Result<String, JobError> {
        self.1.fingerprint(dump_dir)
    }

    fn build(&self, job: &BuildJob<'_>) -> Result<(), batch_export::Error> {
        let until = std::time::Instant::now() + self.0;
        while std::time::Instant::now() < until {
            if job.cancel.load(Ordering::SeqCst) {
                return Err(batch_export::Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.1.build(job)
    }
}
