//! The file-backed token store: one JSON file, replaced atomically, readable by its owner only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The Asana user who granted consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsanaUser {
    /// The user's gid.
    pub gid: String,
    /// Display name.
    pub name: String,
    /// Email, when Asana shares it.
    #[serde(default)]
    pub email: Option<String>,
}

/// The tokens of the connected user, as held in memory.
#[derive(Debug, Clone)]
pub struct StoredTokens {
    /// Bearer token for the REST API.
    pub access_token: SecretString,
    /// Token used to get a new access token; `None` if Asana gave none.
    pub refresh_token: Option<SecretString>,
    /// When the access token stops working.
    pub expires_at: SystemTime,
    /// Who the tokens belong to.
    pub user: AsanaUser,
}

impl StoredTokens {
    /// Whether the access token expires within `margin` from now.
    pub fn expires_within(&self, margin: Duration) -> bool {
        self.expires_at <= SystemTime::now() + margin
    }
}

/// The on-disk form. Secrets are exposed only here, to be written.
#[derive(Serialize, Deserialize)]
struct TokenFileV1 {
    version: u32,
    access_token: String,
    refresh_token: Option<String>,
    /// Seconds since the Unix epoch.
    expires_at: u64,
    user: AsanaUser,
}

/// A failure to read or write the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file system refused.
    #[error("token file {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a token file we wrote.
    #[error("token file {path} is not valid: {source}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The blocking task doing the I/O was cancelled.
    #[error("token file task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A JSON token file at a fixed path.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// A store at `path`; nothing is touched until the first load or save.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the tokens; `None` when no file exists yet.
    pub async fn load(&self) -> Result<Option<StoredTokens>, TokenFileError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || load(&path)).await?
    }

    /// Replaces the file with `tokens`: temp file in the same directory, fsync, rename, fsync
    /// of the directory, so a crash leaves either the old file or the new one.
    pub async fn save(&self, tokens: &StoredTokens) -> Result<(), TokenFileError> {
        let path = self.path.clone();
        let contents = serialize(tokens);
        tokio::task::spawn_blocking(move || {
            crate::util::atomic_file::write(&path, &contents)
                .map_err(|source| TokenFileError::Io { path, source })
        })
        .await?
    }

    /// Deletes temp files a crash left next to the token file (one process per store).
    pub async fn remove_stale_temp_files(&self) {
        let path = self.path.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::util::atomic_file::remove_stale_temp_files(&path)
        })
        .await;
    }

    /// Deletes the file, if any.
    pub async fn remove(&self) -> Result<(), TokenFileError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(TokenFileError::Io { path, source: e })
            }
            _ => Ok(()),
        })
        .await?
    }
}

fn serialize(tokens: &StoredTokens) -> Vec<u8> {
    let file = TokenFileV1 {
        version: 1,
        access_token: tokens.access_token.expose_secret().to_owned(),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        expires_at: tokens
            .expires_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        user: tokens.user.clone(),
    };
    // Serializing a struct of strings and integers into a Vec cannot fail.
    serde_json::to_vec_pretty(&file).unwrap_or_default()
}

fn load(path: &Path) -> Result<Option<StoredTokens>, TokenFileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenFileError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: TokenFileV1 =
        serde_json::from_slice(&bytes).map_err(|source| TokenFileError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(StoredTokens {
        access_token: SecretString::from(file.access_token),
        refresh_token: file.refresh_token.map(SecretString::from),
        expires_at: UNIX_EPOCH + Duration::from_secs(file.expires_at),
        user: file.user,
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn tokens(access: &str, refresh: Option<&str>) -> StoredTokens {
        StoredTokens {
            access_token: SecretString::from(access),
            refresh_token: refresh.map(SecretString::from),
            expires_at: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            user: AsanaUser {
                gid: "42".into(),
                name: "Ada".into(),
                email: Some("ada@example.com".into()),
            },
        }
    }

    #[tokio::test]
    async fn save_creates_parent_dirs_and_a_0600_file_that_loads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = TokenFile::new(dir.path().join("nested/deeper/tokens.json"));

        store.save(&tokens("a1", Some("r1"))).await.expect("save");

        let mode = fs::metadata(store.path())
            .expect("file exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = store.load().await.expect("load").expect("some tokens");
        assert_eq!(loaded.access_token.expose_secret(), "a1");
        assert_eq!(loaded.refresh_token.expect("refresh").expose_secret(), "r1");
        assert_eq!(loaded.user.name, "Ada");
        assert_eq!(
            loaded.expires_at,
            UNIX_EPOCH + Duration::from_secs(2_000_000_000)
        );
    }

    #[tokio::test]
    async fn save_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = TokenFile::new(dir.path().join("tokens.json"));
        store
            .save(&tokens("a1", Some("r1")))
            .await
            .expect("first save");
        let first_inode =
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(store.path()).expect("meta"));

        store.save(&tokens("a2", None)).await.expect("second save");

        let loaded = store.load().await.expect("load").expect("some tokens");
        assert_eq!(loaded.access_token.expose_secret(), "a2");
        assert!(loaded.refresh_token.is_none());
        let second_inode =
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(store.path()).expect("meta"));
        assert_ne!(
            first_inode, second_inode,
            "the file was rewritten in place, not renamed over"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["tokens.json"]);
    }

    #[tokio::test]
    async fn a_missing_file_loads_as_none_and_garbage_as_corrupt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = TokenFile::new(dir.path().join("tokens.json"));
        assert!(store.load().await.expect("load").is_none());

        fs::write(store.path(), b"{not json").expect("write");
        assert!(matches!(
            store.load().await,
            Err(TokenFileError::Corrupt { .. })
        ));
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let shown = format!("{:?}", tokens("secret-access", Some("secret-refresh")));
        assert!(!shown.contains("secret-access") && !shown.contains("secret-refresh"));
    }
}
