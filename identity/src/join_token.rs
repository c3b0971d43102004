//! [`JoinToken`]: the one-time secret a node (an agent, or a downstream
//! CA) attests with. It is a secret: `Debug` never prints it.

use std::fmt;

use serde::Deserialize;

/// A join token as configured (TOML string); `Debug` prints `JoinToken(...)`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct JoinToken(String);

// === impl JoinToken ===

impl JoinToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinToken(...)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_token() {
        let t = JoinToken::new("0123456789abcdef.secret");
        assert_eq!(format!("{t:?}"), "JoinToken(...)");
        assert_eq!(t.expose(), "0123456789abcdef.secret");
    }
}
