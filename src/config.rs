//! Settings: embedded defaults < optional `.env` in the working directory < environment
//! variables, layered with the `config` crate and validated once at startup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::util::retry::RetryPolicy;

/// A setting that could not be read or parsed; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value is present but malformed.
    #[error("invalid setting {name}={value:?}: {reason}")]
    Invalid {
        /// The environment variable's name.
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `.env` file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    DotEnv {
        /// Path of the `.env` file.
        path: String,
        /// The parse or I/O error.
        source: dotenvy::Error,
    },
    /// The layered sources could not be merged.
    #[error("cannot load settings: {0}")]
    Layering(#[from] config::ConfigError),
    /// `DATABASE_URL` is malformed (its value is not repeated: it may hold a password).
    #[error("invalid setting {0}")]
    DatabaseUrl(#[from] crate::store::InvalidDatabaseUrl),
    /// `STORE_KEY` or `STORE_KEY_PREVIOUS` is malformed (never repeated).
    #[error("invalid setting {0}")]
    StoreKey(#[from] crate::store::InvalidStoreKey),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Which protocol the context server speaks (`MCP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpProtocol {
    /// Decide on first use: an MCP handshake, else the REST contract.
    Auto,
    /// The seed's REST contract.
    Rest,
    /// MCP (Streamable HTTP or stdio).
    Mcp,
}

/// Where contexts come from, as configured.
#[derive(Debug, Clone)]
pub enum ContextServer {
    /// `MCP_SERVER_URL`, with the protocol to speak there.
    Url {
        /// The server's URL: the REST base or the MCP endpoint.
        url: Url,
        /// `MCP_PROTOCOL`.
        protocol: McpProtocol,
    },
    /// `MCP_SERVER_COMMAND`, split into program and arguments: an MCP server over stdio.
    Command(Vec<String>),
}

/// The OAuth client registered in Asana's developer console.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// `ASANA_CLIENT_ID`.
    pub client_id: String,
    /// `ASANA_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `ASANA_REDIRECT_URI`: where Asana sends the browser back to.
    pub redirect_uri: Url,
}

/// Every setting of the service, typed and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST`: address to listen on.
    pub host: IpAddr,
    /// `PORT`: port to listen on (0 picks a free one, used by tests).
    pub port: u16,
    /// The context server (`MCP_SERVER_URL` or `MCP_SERVER_COMMAND`), if configured.
    pub context_server: Option<ContextServer>,
    /// `MCP_AUTH_TOKEN`: bearer token sent to the context server.
    pub mcp_auth_token: Option<SecretString>,
    /// The OAuth app, when all three of its settings are present.
    pub oauth_app: Option<OAuthApp>,
    /// Names of the OAuth settings that are missing, for error messages.
    pub missing_oauth: Vec<&'static str>,
    /// `ASANA_API_BASE_URL`: Asana's REST API root.
    pub asana_api_base_url: Url,
    /// `ASANA_AUTHORIZE_URL`: Asana's consent page.
    pub asana_authorize_url: Url,
    /// `ASANA_TOKEN_URL`: Asana's token endpoint.
    pub asana_token_url: Url,
    /// `ASANA_SCOPES`: space-separated scopes; `None` sends no scope (the app's default).
    pub asana_scopes: Option<String>,
    /// `TOKEN_STORE_PATH`: the token file of an earlier version, imported into the store at
    /// start (and then removed).
    pub token_store_path: PathBuf,
    /// `DATABASE_URL`: the store, an SQLite file or a PostgreSQL database.
    pub database_url: crate::store::DatabaseUrl,
    /// `STORE_KEY` and `STORE_KEY_PREVIOUS`: what seals the store's secrets, if anything.
    pub store_sealer: crate::store::Sealer,
    /// `LINKER_API_KEY`: bearer key required on the API; `None` allows loopback clients only.
    pub linker_api_key: Option<SecretString>,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RUST_LOG`: tracing filter directives.
    pub rust_log: String,
    /// `ASANA_TIMEOUT_SECS`: bound on each call to Asana.
    pub asana_timeout: Duration,
    /// `MCP_TIMEOUT_SECS`: bound on each call to the context server.
    pub mcp_timeout: Duration,
    /// `RETRY_MAX_ATTEMPTS` and `RETRY_BUDGET_SECS`: the retry policy of outbound calls.
    pub retry: RetryPolicy,
    /// `ASANA_MAX_CONCURRENT_WRITES`: writes to Asana in flight at once.
    pub asana_max_concurrent_writes: usize,
    /// `REQUEST_DEADLINE_SECS`: longest an attach may take, retries included.
    pub request_deadline: Duration,
    /// `SHUTDOWN_GRACE_SECS`: how long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// `COMMENT_HEADER`: start each comment with the context's name and origin.
    pub comment_header: bool,
    /// `ASANA_COMMENT_MAX_CHARS`: most characters of one comment as sent.
    pub asana_comment_max_chars: usize,
    /// `MAX_COMMENT_PARTS`: most comments one context may become.
    pub max_comment_parts: usize,
    /// `WEBHOOK_RULES_PATH`: TOML file of webhook rules.
    pub webhook_rules_path: Option<PathBuf>,
    /// `METRICS_PUBLIC`: `/metrics` without the API key.
    pub metrics_public: bool,
    /// `PUBLIC_URL`: the origin people and Asana reach the service at (default: the origin
    /// of `ASANA_REDIRECT_URI`, else `http://localhost:PORT`).
    pub public_url: Url,
    /// `COMMENT_HEADER_HOSTS`: the comment header may name the context server's host.
    pub comment_header_hosts: bool,
    /// `HTTP_HEADER_TIMEOUT_SECS`: longest a connection may take to deliver a request's
    /// headers, counted from its opening or from the previous response (so it also bounds
    /// how long a kept-alive connection may sit idle).
    pub http_header_timeout: Duration,
    /// `ALLOWED_WORKSPACES`: whose consent is accepted.
    pub allowed_workspaces: crate::domain::AllowedWorkspaces,
    /// Unknown keys that look like ours (a misspelling in `.env`), to warn about at start.
    pub unknown_keys: Vec<String>,
}

/// Every setting as text, after layering and before validation.
#[derive(Debug, Deserialize)]
struct RawSettings {
    host: String,
    port: String,
    mcp_server_url: Option<String>,
    mcp_server_command: Option<String>,
    mcp_protocol: String,
    mcp_auth_token: Option<String>,
    asana_client_id: Option<String>,
    asana_client_secret: Option<String>,
    asana_redirect_uri: Option<String>,
    asana_api_base_url: String,
    asana_authorize_url: String,
    asana_token_url: String,
    asana_scopes: Option<String>,
    token_store_path: String,
    database_url: String,
    store_key: Option<String>,
    store_key_previous: Option<String>,
    linker_api_key: Option<String>,
    log_format: String,
    rust_log: String,
    asana_timeout_secs: String,
    mcp_timeout_secs: String,
    retry_max_attempts: String,
    retry_budget_secs: String,
    asana_max_concurrent_writes: String,
    request_deadline_secs: String,
    shutdown_grace_secs: String,
    comment_header: String,
    asana_comment_max_chars: String,
    max_comment_parts: String,
    webhook_rules_path: Option<String>,
    metrics_public: String,
    public_url: Option<String>,
    comment_header_hosts: String,
    http_header_timeout_secs: String,
    allowed_workspaces: Option<String>,
}

/// Every setting the service reads, for spotting misspelled ones.
const KNOWN: &[&str] = &[
    "HOST",
    "PORT",
    "MCP_SERVER_URL",
    "MCP_SERVER_COMMAND",
    "MCP_PROTOCOL",
    "MCP_AUTH_TOKEN",
    "ASANA_CLIENT_ID",
    "ASANA_CLIENT_SECRET",
    "ASANA_REDIRECT_URI",
    "ASANA_API_BASE_URL",
    "ASANA_AUTHORIZE_URL",
    "ASANA_TOKEN_URL",
    "ASANA_SCOPES",
    "TOKEN_STORE_PATH",
    "DATABASE_URL",
    "STORE_KEY",
    "STORE_KEY_PREVIOUS",
    "LINKER_API_KEY",
    "LOG_FORMAT",
    "RUST_LOG",
    "ASANA_TIMEOUT_SECS",
    "MCP_TIMEOUT_SECS",
    "RETRY_MAX_ATTEMPTS",
    "RETRY_BUDGET_SECS",
    "ASANA_MAX_CONCURRENT_WRITES",
    "REQUEST_DEADLINE_SECS",
    "SHUTDOWN_GRACE_SECS",
    "COMMENT_HEADER",
    "ASANA_COMMENT_MAX_CHARS",
    "MAX_COMMENT_PARTS",
    "WEBHOOK_RULES_PATH",
    "METRICS_PUBLIC",
    "PUBLIC_URL",
    "COMMENT_HEADER_HOSTS",
    "HTTP_HEADER_TIMEOUT_SECS",
    "HTTP_IDLE_TIMEOUT_SECS",
    "ALLOWED_WORKSPACES",
];

/// Prefixes of our settings: an unknown key with one of them is probably a misspelling.
const OUR_PREFIXES: &[&str] = &[
    "ASANA_",
    "MCP_",
    "LINKER_",
    "COMMENT_",
    "WEBHOOK_",
    "RETRY_",
    "REQUEST_",
    "SHUTDOWN_",
    "TOKEN_",
    "METRICS_",
    "HTTP_",
    "PUBLIC_",
    "ALLOWED_",
];

/// The keys among `keys` that we do not read but that look like ours: one of our prefixes,
/// or a letter or two away from a known key. Each comes with the closest known key.
fn unknown_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut unknown: Vec<String> = keys
        .filter(|key| !KNOWN.contains(&key.as_str()))
        .filter_map(|key| {
            let closest = KNOWN
                .iter()
                .min_by_key(|known| strsim::levenshtein(known, key))
                .copied()
                .unwrap_or_default();
            let near = strsim::levenshtein(closest, key) <= 2;
            (near || OUR_PREFIXES.iter().any(|p| key.starts_with(p)))
                .then(|| format!("{key} (did you mean {closest}?)"))
        })
        .collect();
    unknown.sort();
    unknown
}

const DEFAULTS: &[(&str, &str)] = &[
    ("host", "0.0.0.0"),
    ("port", "3000"),
    ("asana_api_base_url", "https://app.asana.com/api/1.0"),
    (
        "asana_authorize_url",
        "https://app.asana.com/-/oauth_authorize",
    ),
    ("asana_token_url", "https://app.asana.com/-/oauth_token"),
    ("token_store_path", "data/asana_tokens.json"),
    ("database_url", "sqlite://data/linker.db"),
    ("log_format", "pretty"),
    ("rust_log", "info"),
    ("asana_timeout_secs", "10"),
    ("mcp_timeout_secs", "10"),
    ("mcp_protocol", "auto"),
    ("retry_max_attempts", "4"),
    ("retry_budget_secs", "30"),
    // Asana allows 15 concurrent writes per token.
    ("asana_max_concurrent_writes", "15"),
    ("request_deadline_secs", "60"),
    ("shutdown_grace_secs", "20"),
    ("comment_header", "true"),
    ("asana_comment_max_chars", "60000"),
    ("max_comment_parts", "10"),
    ("metrics_public", "true"),
    ("comment_header_hosts", "false"),
    ("http_header_timeout_secs", "15"),
];

impl Settings {
    /// Loads settings from the defaults, `dir/.env` if present, then the process environment.
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        Self::from_layers(read_dotenv(&dir.join(".env"))?, None)
    }

    /// Builds settings from explicit variables only (no `.env`, no process environment).
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, SettingsError> {
        Self::from_layers(HashMap::new(), Some(vars))
    }

    fn from_layers(
        dotenv: HashMap<String, String>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        // Every key of `.env` is meant for us; of the environment, only those with our prefixes.
        let process_keys: Vec<String> = match &env {
            Some(vars) => vars.keys().cloned().collect(),
            None => std::env::vars().map(|(k, _)| k).collect(),
        };
        let mut unknown = unknown_keys(dotenv.keys());
        unknown.extend(unknown_keys(
            process_keys
                .iter()
                .filter(|key| OUR_PREFIXES.iter().any(|p| key.starts_with(p))),
        ));
        let mut builder = config::Config::builder();
        for (key, value) in DEFAULTS {
            builder = builder.set_default(*key, *value)?;
        }
        let raw: RawSettings = builder
            .add_source(layer(Some(dotenv)))
            .add_source(layer(env))
            .build()?
            .try_deserialize()?;
        let mut settings = raw.validate()?;
        settings.unknown_keys = unknown;
        Ok(settings)
    }
}

/// One layer of `NAME=value` pairs; `None` reads the process environment. Empty values count
/// as unset, so `PORT=` falls back to the default.
fn layer(vars: Option<HashMap<String, String>>) -> config::Environment {
    config::Environment::default()
        .ignore_empty(true)
        .source(vars)
}

fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, SettingsError> {
    let to_error = |source| SettingsError::DotEnv {
        path: path.display().to_string(),
        source,
    };
    match dotenvy::from_path_iter(path) {
        Ok(iter) => iter.collect::<Result<_, _>>().map_err(to_error),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(HashMap::new())
        }
        Err(e) => Err(to_error(e)),
    }
}

/// A store key setting, if set.
fn key(
    name: &'static str,
    value: Option<&str>,
) -> Result<Option<crate::store::StoreKey>, SettingsError> {
    Ok(value
        .map(|v| crate::store::StoreKey::parse(name, v))
        .transpose()?)
}

fn invalid(name: &'static str, value: &str, reason: impl ToString) -> SettingsError {
    SettingsError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn parse_url(name: &'static str, value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value).map_err(|e| invalid(name, value, e))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(invalid(
            name,
            value,
            format!("scheme {other} is not http(s)"),
        )),
    }
}

/// `scheme://host[:port]` of `url`, without credentials, path or query.
fn origin(url: &Url) -> Url {
    let mut origin = url.clone();
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    origin
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

fn parse_count(name: &'static str, value: &str, max: u32) -> Result<u32, SettingsError> {
    match value.parse::<u32>() {
        Ok(count) if (1..=max).contains(&count) => Ok(count),
        _ => Err(invalid(
            name,
            value,
            format!("expected a whole number from 1 to {max}"),
        )),
    }
}

fn parse_secs(name: &'static str, value: &str) -> Result<Duration, SettingsError> {
    match value.parse::<u64>() {
        Ok(secs) if (1..=3600).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(invalid(
            name,
            value,
            "expected whole seconds between 1 and 3600",
        )),
    }
}

impl RawSettings {
    fn context_server(&self) -> Result<Option<ContextServer>, SettingsError> {
        let protocol = match self.mcp_protocol.to_ascii_lowercase().as_str() {
            "auto" => McpProtocol::Auto,
            "rest" => McpProtocol::Rest,
            "mcp" => McpProtocol::Mcp,
            _ => {
                return Err(invalid(
                    "MCP_PROTOCOL",
                    &self.mcp_protocol,
                    "expected auto, rest or mcp",
                ));
            }
        };
        match (&self.mcp_server_url, &self.mcp_server_command) {
            (Some(_), Some(command)) => Err(invalid(
                "MCP_SERVER_COMMAND",
                command,
                "set MCP_SERVER_URL or MCP_SERVER_COMMAND, not both",
            )),
            (Some(url), None) => Ok(Some(ContextServer::Url {
                url: parse_url("MCP_SERVER_URL", url)?,
                protocol,
            })),
            (None, Some(command)) => {
                if protocol == McpProtocol::Rest {
                    return Err(invalid(
                        "MCP_PROTOCOL",
                        &self.mcp_protocol,
                        "a command speaks MCP over stdio; rest needs MCP_SERVER_URL",
                    ));
                }
                let words = shell_words::split(command)
                    .map_err(|e| invalid("MCP_SERVER_COMMAND", command, e))?;
                if words.is_empty() {
                    return Err(invalid("MCP_SERVER_COMMAND", command, "no program given"));
                }
                Ok(Some(ContextServer::Command(words)))
            }
            (None, None) => Ok(None),
        }
    }

    fn validate(self) -> Result<Settings, SettingsError> {
        let host = self
            .host
            .parse()
            .map_err(|e| invalid("HOST", &self.host, e))?;
        let port: u16 = self
            .port
            .parse()
            .map_err(|e| invalid("PORT", &self.port, e))?;
        let context_server = self.context_server()?;
        let redirect_uri: Option<Url> = self
            .asana_redirect_uri
            .as_deref()
            .map(|v| parse_url("ASANA_REDIRECT_URI", v))
            .transpose()?;
        let missing_oauth: Vec<&'static str> = [
            ("ASANA_CLIENT_ID", self.asana_client_id.is_none()),
            ("ASANA_CLIENT_SECRET", self.asana_client_secret.is_none()),
            ("ASANA_REDIRECT_URI", redirect_uri.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        let public_url = match (&self.public_url, &redirect_uri) {
            (Some(value), _) => parse_url("PUBLIC_URL", value)?,
            (None, Some(redirect)) => origin(redirect),
            (None, None) => Url::parse(&format!("http://localhost:{port}"))
                .map_err(|e| invalid("PORT", &self.port, e))?,
        };
        let oauth_app = match (self.asana_client_id, self.asana_client_secret, redirect_uri) {
            (Some(client_id), Some(secret), Some(redirect_uri)) => Some(OAuthApp {
                client_id,
                client_secret: SecretString::from(secret),
                redirect_uri,
            }),
            _ => None,
        };
        let log_format = match self.log_format.to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => {
                return Err(invalid(
                    "LOG_FORMAT",
                    &self.log_format,
                    "expected pretty or json",
                ));
            }
        };
        Ok(Settings {
            host,
            port,
            context_server,
            mcp_auth_token: self.mcp_auth_token.map(SecretString::from),
            oauth_app,
            missing_oauth,
            asana_api_base_url: parse_url("ASANA_API_BASE_URL", &self.asana_api_base_url)?,
            asana_authorize_url: parse_url("ASANA_AUTHORIZE_URL", &self.asana_authorize_url)?,
            asana_token_url: parse_url("ASANA_TOKEN_URL", &self.asana_token_url)?,
            asana_scopes: self.asana_scopes,
            token_store_path: PathBuf::from(self.token_store_path),
            database_url: crate::store::DatabaseUrl::parse(&self.database_url)?,
            store_sealer: crate::store::Sealer::new(
                key("STORE_KEY", self.store_key.as_deref())?,
                key("STORE_KEY_PREVIOUS", self.store_key_previous.as_deref())?,
            ),
            linker_api_key: self.linker_api_key.map(SecretString::from),
            log_format,
            rust_log: self.rust_log,
            asana_timeout: parse_secs("ASANA_TIMEOUT_SECS", &self.asana_timeout_secs)?,
            mcp_timeout: parse_secs("MCP_TIMEOUT_SECS", &self.mcp_timeout_secs)?,
            retry: RetryPolicy {
                max_attempts: parse_count("RETRY_MAX_ATTEMPTS", &self.retry_max_attempts, 20)?,
                budget: parse_secs("RETRY_BUDGET_SECS", &self.retry_budget_secs)?,
            },
            asana_max_concurrent_writes: parse_count(
                "ASANA_MAX_CONCURRENT_WRITES",
                &self.asana_max_concurrent_writes,
                1000,
            )? as usize,
            request_deadline: parse_secs("REQUEST_DEADLINE_SECS", &self.request_deadline_secs)?,
            shutdown_grace: parse_secs("SHUTDOWN_GRACE_SECS", &self.shutdown_grace_secs)?,
            comment_header: parse_bool("COMMENT_HEADER", &self.comment_header)?,
            asana_comment_max_chars: match self.asana_comment_max_chars.parse::<usize>() {
                Ok(n) if (1000..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "ASANA_COMMENT_MAX_CHARS",
                        &self.asana_comment_max_chars,
                        "expected a whole number from 1000 to 1000000",
                    ));
                }
            },
            max_comment_parts: parse_count("MAX_COMMENT_PARTS", &self.max_comment_parts, 100)?
                as usize,
            webhook_rules_path: self.webhook_rules_path.map(PathBuf::from),
            metrics_public: parse_bool("METRICS_PUBLIC", &self.metrics_public)?,
            public_url: origin(&public_url),
            comment_header_hosts: parse_bool("COMMENT_HEADER_HOSTS", &self.comment_header_hosts)?,
            allowed_workspaces: crate::domain::AllowedWorkspaces::parse(
                self.allowed_workspaces.as_deref(),
            )
            .map_err(|reason| {
                invalid(
                    "ALLOWED_WORKSPACES",
                    self.allowed_workspaces.as_deref().unwrap_or_default(),
                    &reason,
                )
            })?,
            http_header_timeout: parse_secs(
                "HTTP_HEADER_TIMEOUT_SECS",
                &self.http_header_timeout_secs,
            )?,
            unknown_keys: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = Settings::from_vars(HashMap::new()).expect("defaults are valid");
        assert_eq!(settings.port, 3000);
        assert_eq!(settings.host.to_string(), "0.0.0.0");
        assert_eq!(
            settings.token_store_path,
            PathBuf::from("data/asana_tokens.json")
        );
        assert!(settings.oauth_app.is_none());
        assert_eq!(
            settings.missing_oauth,
            [
                "ASANA_CLIENT_ID",
                "ASANA_CLIENT_SECRET",
                "ASANA_REDIRECT_URI"
            ]
        );
    }

    #[test]
    fn malformed_values_name_the_setting() {
        let cases = [
            ("PORT", "abc"),
            ("PORT", "70000"),
            ("HOST", "not an ip"),
            ("MCP_SERVER_URL", "not a url"),
            ("ASANA_API_BASE_URL", "ftp://example.com"),
            ("LOG_FORMAT", "xml"),
            ("MCP_TIMEOUT_SECS", "0"),
            ("MCP_PROTOCOL", "grpc"),
            ("RETRY_MAX_ATTEMPTS", "0"),
            ("ASANA_MAX_CONCURRENT_WRITES", "many"),
            ("COMMENT_HEADER", "maybe"),
            ("ASANA_COMMENT_MAX_CHARS", "10"),
            ("MCP_SERVER_COMMAND", "npx 'unclosed"),
        ];
        for (name, value) in cases {
            let error = Settings::from_vars(vars(&[(name, value)]))
                .expect_err(&format!("{name}={value} should be refused"));
            assert!(
                error.to_string().contains(name),
                "{name}={value}: message {error} does not name the setting"
            );
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let settings = Settings::from_vars(vars(&[("PORT", ""), ("MCP_SERVER_URL", "")]))
            .expect("empty values fall back to defaults");
        assert_eq!(settings.port, 3000);
        assert!(settings.context_server.is_none());
    }

    #[test]
    fn dotenv_is_overridden_by_the_environment() {
        let dotenv = vars(&[("PORT", "4000"), ("ASANA_CLIENT_ID", "from-dotenv")]);
        let settings =
            Settings::from_layers(dotenv, Some(vars(&[("PORT", "5000")]))).expect("valid layers");
        assert_eq!(settings.port, 5000);
        assert_eq!(
            settings.missing_oauth,
            ["ASANA_CLIENT_SECRET", "ASANA_REDIRECT_URI"]
        );
    }

    #[test]
    fn the_public_url_defaults_to_the_redirect_uris_origin() {
        let settings = Settings::from_vars(vars(&[(
            "ASANA_REDIRECT_URI",
            "https://linker.example.com/asana/oauth/callback",
        )]))
        .expect("valid");
        assert_eq!(settings.public_url.as_str(), "https://linker.example.com/");
        let settings = Settings::from_vars(vars(&[("PORT", "4100")])).expect("valid");
        assert_eq!(settings.public_url.as_str(), "http://localhost:4100/");
    }

    #[test]
    fn misspelled_keys_that_look_like_ours_are_reported() {
        let dotenv = vars(&[("ASANA_CLIENTID", "x"), ("COMPOSE_PROJECT_NAME", "x")]);
        let env = vars(&[("MCP_SERVER_ULR", "x"), ("HOME", "/root")]);

        let settings = Settings::from_layers(dotenv, Some(env)).expect("valid");

        assert_eq!(
            settings.unknown_keys,
            [
                "ASANA_CLIENTID (did you mean ASANA_CLIENT_ID?)",
                "MCP_SERVER_ULR (did you mean MCP_SERVER_URL?)"
            ]
        );
    }

    #[test]
    fn a_url_and_a_command_together_are_refused() {
        let error = Settings::from_vars(vars(&[
            ("MCP_SERVER_URL", "http://127.0.0.1:1/mcp"),
            ("MCP_SERVER_COMMAND", "npx -y server"),
        ]))
        .expect_err("both set");
        assert!(error.to_string().contains("not both"), "{error}");
    }

    #[test]
    fn a_command_is_split_like_a_shell_and_cannot_be_rest() {
        let settings = Settings::from_vars(vars(&[(
            "MCP_SERVER_COMMAND",
            "python3 '/path with spaces/server.py' --stdio",
        )]))
        .expect("valid command");
        let Some(ContextServer::Command(words)) = settings.context_server else {
            panic!("expected a command");
        };
        assert_eq!(words, ["python3", "/path with spaces/server.py", "--stdio"]);
        let error = Settings::from_vars(vars(&[
            ("MCP_SERVER_COMMAND", "server"),
            ("MCP_PROTOCOL", "rest"),
        ]))
        .expect_err("rest over stdio");
        assert!(error.to_string().contains("MCP_PROTOCOL"), "{error}");
    }
}
