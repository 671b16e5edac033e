//! Where archive objects go: a directory (`file:///abs/dir`) or an S3
//! bucket (`s3://bucket/prefix`). Every write is create-only: an object
//! that exists is never replaced, and the caller learns that it exists.
//!
//! The S3 client is `rusty-s3` (request signing, SigV4 presigned URLs,
//! no I/O of its own) over `ureq` (blocking HTTP on the calling thread):
//! no async runtime and no background thread inside the library.

pub use super::settings::ArchiveUrl;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a create-only write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The object was created with these bytes.
    Created,
    /// An object of that name exists already; nothing was written.
    Exists,
}

/// An archive's store. Errors are messages naming the store and what failed.
pub trait Backend: Send + Sync {
    /// Creates `name` with `data` unless it exists.
    fn put_new(&self, name: &str, data: &[u8]) -> Result<Put, String>;
    /// The bytes of `name`, `None` when it does not exist.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
    /// Every object name (relative to the archive's prefix), in any order.
    fn list(&self) -> Result<Vec<String>, String>;
    /// The URL, for messages.
    fn url(&self) -> &str;
}

/// Opens the store an archive URL names (for S3, with the endpoint, region
/// and credentials of the standard `AWS_*` environment variables).
pub fn open(url: &str) -> Result<Box<dyn Backend>, String> {
    match ArchiveUrl::parse(url)? {
        ArchiveUrl::File(dir) => Ok(Box::new(FileBackend {
            dir,
            url: url.to_string(),
        })),
        ArchiveUrl::S3 { bucket, prefix } => Ok(Box::new(S3Backend::new(url, &bucket, prefix)?)),
    }
}

/// A directory of objects.
pub struct FileBackend {
    dir: PathBuf,
    url: String,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Backend for FileBackend {
    fn put_new(&self, name: &str, data: &[u8]) -> Result<Put, String> {
        let ctx = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", self.url);
        std::fs::create_dir_all(&self.dir).map_err(|e| ctx("creating the directory", e))?;
        let target = self.dir.join(name);
        if target.exists() {
            return Ok(Put::Exists);
        }
        let tmp = self.dir.join(format!(
            ".{name}.{}.{:x}.tmp",
            std::process::id(),
            crate::segment::new_salt()
        ));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(ctx(&format!("writing {}", tmp.display()), e));
        }
        // link() never replaces an existing name: of two writers, one
        // creates the object and the other gets EEXIST.
        let linked = std::fs::hard_link(&tmp, &target);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.dir).map_err(|e| ctx("syncing the directory", e))?;
                Ok(Put::Created)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Put::Exists),
            Err(e) => Err(ctx(&format!("linking {}", target.display()), e)),
        }
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: reading {name}: {e}", self.url)),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: listing: {e}", self.url)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: listing: {e}", self.url))?;
            if let Some(n) = entry.file_name().to_str() {
                if !n.starts_with('.') {
                    names.push(n.to_string());
                }
            }
        }
        Ok(names)
    }

    fn url(&self) -> &str {
        &self.url
    }
}

/// An S3 bucket (or an S3-compatible store), with a key prefix.
pub struct S3Backend {
    bucket: rusty_s3::Bucket,
    credentials: Option<rusty_s3::Credentials>,
    prefix: String,
    agent: ureq::Agent,
    url: String,
}

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(600);
/// Every request gives up after this long (a stopped store must not hold
/// the archiver, or a close, for ever), unless
/// `PWAL_ARCHIVE_REQUEST_TIMEOUT_MS` says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

fn request_timeout() -> Result<Duration, String> {
    match env("PWAL_ARCHIVE_REQUEST_TIMEOUT_MS") {
        None => Ok(REQUEST_TIMEOUT),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "PWAL_ARCHIVE_REQUEST_TIMEOUT_MS={v:?}: expected a positive number of milliseconds"
            )),
        },
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Backend {
    fn new(url: &str, bucket: &str, prefix: String) -> Result<S3Backend, String> {
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let (endpoint, style) = match env("AWS_ENDPOINT_URL") {
            // A local or S3-compatible store: path-style addressing.
            Some(e) => (e, rusty_s3::UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                rusty_s3::UrlStyle::VirtualHost,
            ),
        };
        let endpoint_url = endpoint
            .parse()
            .map_err(|e| format!("AWS_ENDPOINT_URL={endpoint:?}: {e}"))?;
        let b = rusty_s3::Bucket::new(endpoint_url, style, bucket.to_string(), region)
            .map_err(|e| format!("archive URL {url:?} at {endpoint}: {e:?}"))?;
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(k), Some(s)) => Some(match env("AWS_SESSION_TOKEN") {
                Some(t) => rusty_s3::Credentials::new_with_token(k, s, t),
                None => rusty_s3::Credentials::new(k, s),
            }),
            _ => None,
        };
        let timeout = request_timeout()?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build();
        Ok(S3Backend {
            bucket: b,
            credentials,
            prefix,
            agent,
            url: url.to_string(),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn failed(&self, what: &str, e: ureq::Error) -> String {
        match e {
            ureq::Error::Status(code, resp) => {
                let body = resp.into_string().unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                format!("{}: {what}: HTTP {code}: {body}", self.url)
            }
            ureq::Error::Transport(t) => format!("{}: {what}: {t}", self.url),
        }
    }
}

impl Backend for S3Backend {
    fn put_new(&self, name: &str, data: &[u8]) -> Result<Put, String> {
        use rusty_s3::S3Action;
        let key = self.key(name);
        let mut action = self.bucket.put_object(self.credentials.as_ref(), &key);
        action.headers_mut().insert("if-none-match", "*");
        let url = action.sign(SIGNED_FOR);
        match self
            .agent
            .put(url.as_str())
            .set("if-none-match", "*")
            .send_bytes(data)
        {
            Ok(_) => Ok(Put::Created),
            // 412: the object exists. 409: a concurrent conditional write
            // to the same key is in progress; the caller retries, and then
            // finds it (or creates it).
            Err(ureq::Error::Status(412, _)) => Ok(Put::Exists),
            Err(e) => Err(self.failed(&format!("PUT {key}"), e)),
        }
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        use rusty_s3::S3Action;
        let key = self.key(name);
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), &key)
            .sign(SIGNED_FOR);
        match self.agent.get(url.as_str()).call() {
            Ok(resp) => {
                let mut b = Vec::new();
                resp.into_reader()
                    .read_to_end(&mut b)
                    .map_err(|e| format!("{}: GET {key}: {e}", self.url))?;
                Ok(Some(b))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(self.failed(&format!("GET {key}"), e)),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        use rusty_s3::S3Action;
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.credentials.as_ref());
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.as_str());
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNED_FOR);
            let text = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| self.failed("LIST", e))?
                .into_string()
                .map_err(|e| format!("{}: LIST: {e}", self.url))?;
            let resp = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| format!("{}: LIST: unreadable answer: {e}", self.url))?;
            for c in resp.contents {
                if let Some(n) = c.key.strip_prefix(&self.prefix) {
                    if !n.contains('/') {
                        names.push(n.to_string());
                    }
                }
            }
            match resp.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(names)
    }

    fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_named() {
        assert_eq!(
            ArchiveUrl::parse("s3://b/some/prefix/").unwrap(),
            ArchiveUrl::S3 {
                bucket: "b".into(),
                prefix: "some/prefix/".into()
            }
        );
        assert_eq!(
            ArchiveUrl::parse("s3://b").unwrap(),
            ArchiveUrl::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            ArchiveUrl::parse("file:///x/y").unwrap(),
            ArchiveUrl::File("/x/y".into())
        );
        assert!(ArchiveUrl::parse("file://rel")
            .unwrap_err()
            .contains("absolute"));
        assert!(ArchiveUrl::parse("s3:///p").unwrap_err().contains("bucket"));
        assert!(ArchiveUrl::parse("http://x")
            .unwrap_err()
            .contains("expected"));
    }

    #[test]
    fn a_file_store_never_replaces_an_object() {
        let dir = std::env::temp_dir().join(format!("pwal-fb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("file://{}", dir.display());
        let b = open(&url).unwrap();
        assert_eq!(b.put_new("a", b"one").unwrap(), Put::Created);
        assert_eq!(b.put_new("a", b"two").unwrap(), Put::Exists);
        assert_eq!(b.get("a").unwrap().unwrap(), b"one");
        assert_eq!(b.get("b").unwrap(), None);
        assert_eq!(b.list().unwrap(), vec!["a".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
