//! The file outbox: an [`EmailSender`] that writes every email as one `.eml` file into a
//! directory instead of sending it, for local development and tests, so a developer can open
//! exactly the message tayori would have sent in any mail client. It owns the directory's layout
//! (file names that sort by time and name the delivery) and writing each file atomically, so a
//! reader never sees half an email; the message bytes come from `tayori-mime`, the same as for
//! every other sender. It must not touch the network, and it is never a production sender.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tayori_app::ports::{EmailSender, SendError, SentEmail};
use tayori_domain::OutgoingEmail;

/// Where the file outbox writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The directory that receives the `.eml` files; created, with its parents, when missing.
    pub dir: PathBuf,
}

/// An [`EmailSender`] that writes each email to `{dir}/{timestamp}-{delivery id}.eml`, where
/// the timestamp is the send time in UTC like `20261127T100000Z` (the same instant as the
/// message's `Date` header), so the files sort in the order they were sent.
///
/// Each file is written under a hidden temporary name (`.{name}.{pid}-{n}.tmp`) in the same
/// directory, flushed to disk and then renamed into place, so a reader listing `*.eml` never sees
/// a partial file. A file is never overwritten: the same delivery sent twice within one second
/// gets a second file `…-2.eml`, so every send that happened stays visible (the crash tests
/// count them).
#[derive(Debug, Clone)]
pub struct FileOutbox {
    dir: PathBuf,
    now: fn() -> DateTime<Utc>,
}

impl FileOutbox {
    /// An outbox writing into `config.dir`, stamping files with the system clock. The directory
    /// is created on the first send, not here, so building one never does IO.
    pub fn new(config: OutboxConfig) -> Self {
        Self { dir: config.dir, now: Utc::now }
    }

    /// The same outbox with another clock, for tests that need predictable file names and dates.
    pub fn with_now(self, now: fn() -> DateTime<Utc>) -> Self {
        Self { now, ..self }
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl EmailSender for FileOutbox {
    /// Writes one file. An email `tayori-mime` cannot build is `Rejected`; any IO error (missing
    /// permissions, disk full, a path that is not a directory) is `Unavailable`, and then no
    /// `.eml` file was written.
    #[tracing::instrument(
        name = "outbox.send",
        skip_all,
        fields(
            tenant = %email.tenant,
            event_type = %email.event_type,
            delivery_id = %email.delivery_id,
        )
    )]
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        let now = (self.now)();
        let bytes = tayori_mime::build_message(email, now).map_err(|error| {
            SendError::Rejected { reason: format!("the message cannot be built: {error}") }
        })?;
        let file_name = format!("{}-{}.eml", now.format("%Y%m%dT%H%M%SZ"), email.delivery_id);

        let dir = self.dir.clone();
        let name = file_name.clone();
        let path = tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
            .await
            .map_err(|error| SendError::Unavailable {
                reason: format!("the outbox writer task failed: {error}"),
            })?
            .map_err(|reason| SendError::Unavailable { reason })?;

        tracing::info!(path = %path.display(), "Wrote the email to the file outbox.");
        let written = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(SentEmail { provider_message_id: written.unwrap_or(file_name) })
    }
}

/// Makes temporary names unique within the process; the process id makes them unique across
/// processes sharing a directory.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `dir/file_name` through a temporary file and a rename, creating `dir` when
/// missing. Returns the final path, or what failed as a sentence; the temporary file is removed
/// on failure.
fn write_atomically(dir: &Path, file_name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|error| failed("create the outbox directory", dir, &error))?;

    let temp_path = dir.join(format!(
        ".{file_name}.{}-{}.tmp",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_then_link(&temp_path, dir, file_name, bytes);
    // The temporary name is gone either way: linked into place, or failed.
    let _ = fs::remove_file(&temp_path);
    let final_path = result?;

    // Persist the rename itself. The file is already complete and visible, so the email counts
    // as written even if this fails: reporting an error would make the caller write it twice.
    if let Err(error) = sync_dir(dir) {
        tracing::warn!(
            dir = %dir.display(),
            error = %error,
            "Could not flush the outbox directory; the file may not survive a power loss."
        );
    }
    Ok(final_path)
}

/// Writes the temporary file, then links it under the first free name among `file_name`,
/// `stem-2.eml`, `stem-3.eml`, … (a hard link fails instead of replacing an existing file, which
/// a rename would do silently).
fn write_then_link(
    temp_path: &Path,
    dir: &Path,
    file_name: &str,
    bytes: &[u8],
) -> Result<PathBuf, String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp_path)
        .map_err(|error| failed("create", temp_path, &error))?;
    file.write_all(bytes).map_err(|error| failed("write", temp_path, &error))?;
    file.sync_all().map_err(|error| failed("flush", temp_path, &error))?;
    drop(file);
    let stem = file_name.strip_suffix(".eml").unwrap_or(file_name);
    let mut candidate = dir.join(file_name);
    let mut copy = 1;
    loop {
        match fs::hard_link(temp_path, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                copy += 1;
                candidate = dir.join(format!("{stem}-{copy}.eml"));
            }
            Err(error) => return Err(failed("link into", &candidate, &error)),
        }
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened as files here; the rename is as durable as the platform makes it.
    Ok(())
}

fn failed(action: &str, path: &Path, error: &io::Error) -> String {
    format!("could not {action} {}: {error}", path.display())
}
