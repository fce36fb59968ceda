//! Bearer-token authentication of writers: which principal a token is and which regions it may write as.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::RegionId;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;
use crate::routes::CommandState;

/// A configured API token. The secret never appears in logs or `Debug` output.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it; recorded as the actor of the events it writes.
    pub name: String,
    pub secret: String,
    /// `admin`, or `region:<name>` to write as that region's operator.
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Region(RegionId),
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once(':') {
            None if raw == "admin" => Ok(Scope::Admin),
            Some(("region", region)) => RegionId::parse(region)
                .map(Scope::Region)
                .map_err(|e| format!("scope {raw:?}: {e}")),
            _ => Err(format!(
                "scope {raw:?} is neither \"admin\" nor \"region:<name>\""
            )),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Writing on a region's node takes `admin` or that region's scope.
    pub fn may_write_as(&self, region: &RegionId) -> bool {
        self.scopes
            .iter()
            .any(|s| matches!(s, Scope::Admin) || matches!(s, Scope::Region(r) if r == region))
    }
}

/// Checks bearer tokens against the configured ones, comparing digests in constant time.
pub struct Authenticator {
    tokens: Vec<([u8; 32], Principal)>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Authenticator {
    pub fn new(configs: &[TokenConfig]) -> Result<Self, String> {
        let tokens = configs
            .iter()
            .map(|config| {
                if config.secret.len() < 16 {
                    return Err(format!(
                        "token {:?}: the secret must be at least 16 characters",
                        config.name
                    ));
                }
                let scopes = config
                    .scopes
                    .iter()
                    .map(|s| Scope::parse(s))
                    .collect::<Result<_, _>>()?;
                Ok((
                    digest(&config.secret),
                    Principal {
                        name: config.name.clone(),
                        scopes,
                    },
                ))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokens })
    }

    /// The principal holding `secret`. Every configured token is compared, match or not, so
    /// timing says nothing about which one (or how much of one) matched.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        let presented = digest(secret);
        let mut found = None;
        for (stored, principal) in &self.tokens {
            if bool::from(stored.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl FromRequestParts<CommandState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CommandState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing Authorization header"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be \"Bearer <token>\"",
            ))?;
        state
            .auth
            .authenticate(secret.trim())
            .ok_or(ApiError::Unauthorized("unknown token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str, scopes: &[&str]) -> TokenConfig {
        TokenConfig {
            name: "ops".into(),
            secret: secret.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn authenticates_only_the_exact_secret() {
        let auth = Authenticator::new(&[config("0123456789abcdef", &["admin"])]).unwrap();
        assert!(auth.authenticate("0123456789abcdef").is_some());
        assert!(auth.authenticate("0123456789abcdeF").is_none());
        assert!(auth.authenticate("").is_none());
    }

    #[test]
    fn scopes_grant_their_region_only() {
        let auth = Authenticator::new(&[config("0123456789abcdef", &["region:eu-west"])]).unwrap();
        let principal = auth.authenticate("0123456789abcdef").unwrap();
        assert!(principal.may_write_as(&RegionId::parse("eu-west").unwrap()));
        assert!(!principal.may_write_as(&RegionId::parse("us-east").unwrap()));
    }

    #[test]
    fn rejects_bad_configuration() {
        assert!(Authenticator::new(&[config("short", &["admin"])]).is_err());
        assert!(Authenticator::new(&[config("0123456789abcdef", &["root"])]).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", config("0123456789abcdef", &["admin"]));
        assert!(!shown.contains("0123456789abcdef"));
    }
}
