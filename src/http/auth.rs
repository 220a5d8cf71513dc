//! Tokens and the workspaces they may export, read from a JSON file.
//!
//! # Format
//!
//! ```json
//! {
//!   "tokens": [
//!     {"name": "ecology team", "token": "3f9c0d...", "workspaces": ["ws-ecology"]},
//!     {"name": "admin", "token": "a71e4b...", "workspaces": ["*"]}
//!   ]
//! }
//! ```
//!
//! `name` is for people reading the file; `"*"` stands for every
//! workspace. Requests carry `Authorization: Token <token>`. A missing or
//! unknown token is refused with 401; a token without access to a batch's
//! workspace is told the batch does not exist (404), so tokens cannot probe
//! for other teams' batch ids.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::signing::{random_bytes, write_private};

/// Why the token file could not be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The token file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The file is not JSON of the [format](self).
    #[error("{path}: not a token file: {error}")]
    Malformed {
        /// The token file.
        path: PathBuf,
        /// What the JSON parser found.
        error: serde_json::Error,
    },
}

/// The token file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenFile {
    /// Every token the service accepts.
    pub tokens: Vec<TokenEntry>,
}

/// One token of a [`TokenFile`].
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    /// A label for people; never used for access.
    #[serde(default)]
    pub name: String,
    /// The secret itself.
    pub token: String,
    /// Workspace ids the token may export, or `"*"` for all.
    pub workspaces: Vec<String>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens never reach logs, not even through Debug.
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("workspaces", &self.workspaces)
            .finish_non_exhaustive()
    }
}

/// The accepted tokens, looked up by the SHA-256 of the presented token so
/// the lookup's timing says nothing about how close a guess was.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Vec<String>)>,
}

/// What a token may see.
#[derive(Debug, Clone)]
pub struct Access {
    workspaces: Vec<String>,
}

impl Access {
    /// True when the token may export batches of `workspace_id`.
    pub fn allows(&self, workspace_id: &str) -> bool {
        self.workspaces
            .iter()
            .any(|w| w == "*" || w == workspace_id)
    }
}

impl Tokens {
    /// The tokens of a token file's contents.
    pub fn from_file(file: &TokenFile) -> Tokens {
        Tokens {
            entries: file
                .tokens
                .iter()
                .filter(|t| !t.token.is_empty())
                .map(|t| (digest(&t.token), t.workspaces.clone()))
                .collect(),
        }
    }

    /// Reads the token file at `path`.
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let text = fs::read(path).map_err(|error| TokenFileError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let file: TokenFile =
            serde_json::from_slice(&text).map_err(|error| TokenFileError::Malformed {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(Tokens::from_file(&file))
    }

    /// Writes a token file at `path` (readable by its owner only) holding
    /// one new random development token for `workspaces`, and returns the
    /// tokens. The token is not returned: whoever needs it reads the file,
    /// so it is never at hand to be printed. Refuses to overwrite an
    /// existing file.
    pub fn create_default(path: &Path, workspaces: Vec<String>) -> Result<Tokens, TokenFileError> {
        let io = |error| TokenFileError::Io {
            path: path.to_path_buf(),
            error,
        };
        let token = crate::hash::to_hex(&random_bytes(20).map_err(io)?);
        let file = TokenFile {
            tokens: vec![TokenEntry {
                name: "development token".to_owned(),
                token,
                workspaces,
            }],
        };
        // Serialising plain strings cannot fail.
        let text = serde_json::to_vec_pretty(&file).unwrap_or_default();
        write_private(path, &text).map_err(io)?;
        Ok(Tokens::from_file(&file))
    }

    /// The access of the `Authorization` header's value, or `None` for a
    /// missing, malformed or unknown token.
    pub fn check(&self, authorization: Option<&str>) -> Option<Access> {
        // RFC 9110 makes the scheme case-insensitive: `token x` is `Token x`.
        let (scheme, token) = authorization?.trim_start().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("token") {
            return None;
        }
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        let presented = digest(token);
        self.entries
            .iter()
            .find(|(hash, _)| *hash == presented)
            .map(|(_, workspaces)| Access {
                workspaces: workspaces.clone(),
            })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_grant_their_workspaces_only() {
        let file: TokenFile = serde_json::from_str(
            r#"{"tokens": [{"token": "t1", "workspaces": ["w1"]},
                           {"name": "admin", "token": "t2", "workspaces": ["*"]}]}"#,
        )
        .unwrap();
        let tokens = Tokens::from_file(&file);
        assert!(tokens.check(None).is_none());
        assert!(tokens.check(Some("Token nope")).is_none());
        assert!(tokens.check(Some("Bearer t1")).is_none());
        let one = tokens.check(Some("Token t1")).unwrap();
        assert!(one.allows("w1") && !one.allows("w2"));
        assert!(tokens.check(Some("Token t2")).unwrap().allows("w2"));
        assert!(
            tokens.check(Some("token t1")).is_some(),
            "the scheme ignores case"
        );
        assert!(tokens.check(Some("TOKEN  t1")).is_some());
        assert!(tokens.check(Some("Tokent1")).is_none());
    }
}
