//! Asana's OAuth endpoints through the `oauth2` crate: the consent URL with PKCE, the code
//! exchange and the refresh, sent with the service's one `reqwest` client.

use std::time::{Duration, SystemTime};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::OAuthApp;
use crate::telemetry::metrics;
use crate::util::retry::{Retry, retry_after};

/// Asana answers one hour; used when an answer leaves `expires_in` out.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

// Asana's token answers also name the user (`data`); the linker reads `/users/me` instead,
// which adds their workspaces.
type AsanaTokenResponse = StandardTokenResponse<EmptyExtraTokenFields, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    AsanaTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A failure at Asana's token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Asana answered with an OAuth error such as `invalid_grant`.
    #[error("Asana refused the grant: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The OAuth error code.
        error: String,
        /// Asana's explanation, if any.
        description: Option<String>,
    },
    /// No answer in time.
    #[error("Asana's token endpoint did not answer in time")]
    Timeout,
    /// A 429 or 5xx from the token endpoint.
    #[error("Asana's token endpoint answered {status}")]
    Unavailable {
        /// The status.
        status: u16,
        /// Seconds from `Retry-After`, if given.
        retry_after: Option<u64>,
    },
    /// No connection could be made.
    #[error("cannot connect to Asana's token endpoint: {0}")]
    Unreachable(String),
    /// The request could not be sent or the answer not read.
    #[error("cannot reach Asana's token endpoint: {0}")]
    Transport(String),
    /// The answer was not a token answer.
    #[error("unexpected answer from Asana's token endpoint: {0}")]
    UnexpectedResponse(String),
}

impl OAuthError {
    /// Whether Asana refused the refresh token or code itself (revoked, expired, reused).
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Rejected { error, .. } if error == "invalid_grant")
    }

    /// What the retry policy may do after this failure.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Unavailable {
                retry_after: Some(secs),
                ..
            } => Retry::After(Duration::from_secs(*secs)),
            Self::Unavailable { .. } | Self::Unreachable(_) => Retry::Backoff,
            _ => Retry::No,
        }
    }
}

/// What the token endpoint gave: tokens and their lifetime.
#[derive(Debug)]
pub struct GrantedTokens {
    /// The new access token.
    pub access_token: SecretString,
    /// A new refresh token, if Asana sent one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires.
    pub expires_at: SystemTime,
}

/// A consent request: where to send the browser and what to remember until the callback.
#[derive(Debug)]
pub struct Consent {
    /// Asana's consent page with every parameter set.
    pub url: Url,
    /// The single-use `state` value.
    pub state: String,
    /// The PKCE verifier matching the URL's challenge.
    pub verifier: PkceCodeVerifier,
}

/// The transport error handed to `oauth2`.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] oauth2::http::Error),
    #[error("status {status}")]
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
}

/// Asana's OAuth endpoints for one registered app.
#[derive(Debug, Clone)]
pub struct AsanaOAuth {
    client: OAuthClient,
    /// The app's id and secret, for revoking a grant.
    client_id: String,
    client_secret: SecretString,
    /// Asana's revocation endpoint (`/-/oauth_revoke` beside the token endpoint).
    revoke_url: Url,
    redirect_uri: String,
    scopes: Option<String>,
    http: reqwest::Client,
    timeout: Duration,
}

impl AsanaOAuth {
    /// Builds the client; `http` must not follow redirects (oauth2-rs: SSRF).
    pub fn new(
        app: &OAuthApp,
        authorize_url: &Url,
        token_url: &Url,
        scopes: Option<String>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        let client = oauth2::Client::new(ClientId::new(app.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                app.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(app.redirect_uri.clone()))
            // Asana documents client credentials in the form body.
            .set_auth_type(oauth2::AuthType::RequestBody);
        let revoke_url = token_url
            .join("/-/oauth_revoke")
            .unwrap_or_else(|_| token_url.clone());
        Self {
            client,
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            revoke_url,
            redirect_uri: app.redirect_uri.to_string(),
            scopes,
            http,
            timeout,
        }
    }

    /// A consent URL with a fresh random `state` and an S256 PKCE challenge.
    pub fn consent(&self) -> Consent {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        if let Some(scopes) = &self.scopes {
            request =
                request.add_scopes(scopes.split_whitespace().map(|s| Scope::new(s.to_owned())));
        }
        let (url, state) = request.url();
        Consent {
            url,
            state: state.secret().clone(),
            verifier,
        }
    }

    /// Exchanges an authorization code and its PKCE verifier for tokens.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(
        &self,
        code: String,
        verifier: PkceCodeVerifier,
    ) -> Result<GrantedTokens, OAuthError> {
        let http = self.http_client();
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await;
        granted(answer)
    }

    /// Gets a new access token with the refresh token.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<GrantedTokens, OAuthError> {
        let http = self.http_client();
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let answer = self
            .client
            .exchange_refresh_token(&token)
            // Asana lists redirect_uri among the refresh parameters.
            .add_extra_param("redirect_uri", self.redirect_uri.clone())
            .request_async(&http)
            .await;
        granted(answer)
    }

    /// Revokes the grant behind `refresh_token` at Asana (the person disconnected).
    #[tracing::instrument(skip_all)]
    pub async fn revoke(&self, refresh_token: &SecretString) -> Result<(), OAuthError> {
        let response = self
            .http
            .post(self.revoke_url.clone())
            .timeout(self.timeout)
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
                ("token", refresh_token.expose_secret()),
            ])
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    OAuthError::Timeout
                } else {
                    OAuthError::Transport(crate::util::cause_chain(&error))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(OAuthError::Unavailable {
                status: status.as_u16(),
                retry_after: None,
            })
        }
    }

    fn http_client(
        &self,
    ) -> impl Fn(
        HttpRequest,
    )
        -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
        let http = self.http.clone();
        let timeout = self.timeout;
        move |request| Box::pin(send(http.clone(), timeout, request))
    }
}

async fn send(
    http: reqwest::Client,
    timeout: Duration,
    request: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let mut request = reqwest::Request::try_from(request)?;
    *request.timeout_mut() = Some(timeout);
    let response = http
        .execute(request)
        .await
        .inspect_err(|e| metrics::upstream("token", metrics::Outcome::of_error(e)))?;
    let status = response.status();
    metrics::upstream("token", metrics::Outcome::of_status(status));
    // Transient statuses carry no OAuth error body: report them for the retry policy.
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(HttpError::Status {
            status: status.as_u16(),
            retry_after: retry_after(response.headers()),
        });
    }
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(response.bytes().await?.to_vec())?)
}

fn granted(
    answer: Result<AsanaTokenResponse, RequestTokenError<HttpError, BasicErrorResponse>>,
) -> Result<GrantedTokens, OAuthError> {
    let response = answer.map_err(|error| match error {
        RequestTokenError::ServerResponse(body) => OAuthError::Rejected {
            error: body.error().to_string(),
            description: body.error_description().cloned(),
        },
        RequestTokenError::Request(HttpError::Reqwest(e)) if e.is_connect() => {
            OAuthError::Unreachable(crate::util::cause_chain(&e))
        }
        RequestTokenError::Request(HttpError::Reqwest(e)) if e.is_timeout() => OAuthError::Timeout,
        RequestTokenError::Request(HttpError::Status {
            status,
            retry_after,
        }) => OAuthError::Unavailable {
            status,
            retry_after,
        },
        RequestTokenError::Request(e) => OAuthError::Transport(crate::util::cause_chain(&e)),
        // The body may echo what we sent; keep only the parse error.
        RequestTokenError::Parse(e, _body) => OAuthError::UnexpectedResponse(e.to_string()),
        RequestTokenError::Other(message) => OAuthError::UnexpectedResponse(message),
    })?;
    Ok(GrantedTokens {
        access_token: SecretString::from(response.access_token().secret().clone()),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().clone())),
        expires_at: SystemTime::now() + response.expires_in().unwrap_or(DEFAULT_LIFETIME),
    })
}
