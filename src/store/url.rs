//! `DATABASE_URL`, validated once: its engine, its SQLite file, and a form to show that never
//! carries the password.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// The database engine behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An embedded SQLite file: one replica.
    Sqlite,
    /// A PostgreSQL server: any number of replicas.
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// A `DATABASE_URL` the store can open: `sqlite://PATH` or `postgres://…`.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    shown: String,
    engine: Engine,
    sqlite_path: Option<PathBuf>,
}

/// Why a `DATABASE_URL` was refused; never quotes the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("DATABASE_URL {0}")]
pub struct InvalidDatabaseUrl(&'static str);

impl DatabaseUrl {
    /// Parses `text`: `sqlite://data/linker.db` (relative to the working directory),
    /// `sqlite:///var/lib/linker/linker.db`, or `postgres://user:password@host:5432/db`.
    pub fn parse(text: &str) -> Result<Self, InvalidDatabaseUrl> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path.starts_with(':') {
                return Err(InvalidDatabaseUrl(
                    "must name an SQLite file, e.g. sqlite://data/linker.db",
                ));
            }
            // `mode=rwc`: the file is created if missing (it is prepared beforehand anyway).
            return Ok(Self {
                url: SecretString::from(format!("sqlite://{path}?mode=rwc")),
                shown: format!("sqlite://{path}"),
                engine: Engine::Sqlite,
                sqlite_path: Some(PathBuf::from(path)),
            });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let mut parsed = ::url::Url::parse(text)
                .map_err(|_| InvalidDatabaseUrl("is not a valid postgres:// URL"))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(InvalidDatabaseUrl("must name the PostgreSQL host"));
            }
            if parsed.password().is_some() {
                // Infallible for a URL with a host.
                let _ = parsed.set_password(Some("***"));
            }
            return Ok(Self {
                url: SecretString::from(text.to_owned()),
                shown: parsed.to_string(),
                engine: Engine::Postgres,
                sqlite_path: None,
            });
        }
        Err(InvalidDatabaseUrl(
            "must start with sqlite:// or postgres://",
        ))
    }

    /// The engine it names.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The SQLite file, for an SQLite store.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// The URL with its password, for the driver only.
    pub(super) fn expose(&self) -> &str {
        self.url.expose_secret()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_password_is_never_shown() {
        let url =
            DatabaseUrl::parse("postgres://linker:s3cret@db.internal:5432/linker").expect("valid");
        assert_eq!(url.engine(), Engine::Postgres);
        assert_eq!(
            url.to_string(),
            "postgres://linker:***@db.internal:5432/linker"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.expose(),
            "postgres://linker:s3cret@db.internal:5432/linker"
        );
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        let relative = DatabaseUrl::parse("sqlite://data/linker.db").expect("valid");
        assert_eq!(relative.sqlite_path(), Some(Path::new("data/linker.db")));
        let absolute = DatabaseUrl::parse("sqlite:///var/lib/linker.db").expect("valid");
        assert_eq!(
            absolute.sqlite_path(),
            Some(Path::new("/var/lib/linker.db"))
        );
        assert_eq!(absolute.expose(), "sqlite:///var/lib/linker.db?mode=rwc");
    }

    #[test]
    fn other_urls_are_refused_without_being_quoted() {
        for bad in ["mysql://u:pw@h/db", "sqlite::memory:", "postgres:///db", ""] {
            let error = DatabaseUrl::parse(bad).expect_err(bad).to_string();
            assert!(!error.contains("pw"), "{error}");
        }
    }
}
