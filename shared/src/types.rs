//! Parse, don't validate: untrusted strings become these types at the edge,
//! and code behind the edge only accepts the types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A lower-case URL-safe identifier: `^[a-z0-9]+(-[a-z0-9]+)*$`, 1–64 chars.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, String> {
        if raw.is_empty() || raw.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        let valid_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_chars || raw.starts_with('-') || raw.ends_with('-') || raw.contains("--") {
            return Err("must be lower-case letters and digits separated by single hyphens".into());
        }
        Ok(Slug(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Slug::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An email address, trimmed and lower-cased (addresses are compared
/// case-insensitively everywhere in mPanel).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<EmailAddress, String> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters".into());
        }
        let parsed = email_address::EmailAddress::from_str(trimmed)
            .map_err(|_| "is not a valid email address".to_string())?;
        // Quoted local parts, IP-literal domains and display names are valid
        // RFC 5322 but not something a customer or staff member types.
        let domain = parsed.domain();
        if parsed.local_part().starts_with('"') || domain.starts_with('[') || !domain.contains('.')
        {
            return Err("is not a valid email address".into());
        }
        Ok(EmailAddress(parsed.email().to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        EmailAddress::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A human-readable name: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<DisplayName, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 200 {
            return Err("must be 1 to 200 characters".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(DisplayName(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["demo", "a", "starter-monthly", "a1-b2-c3", &"x".repeat(64)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Demo",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a b",
            "ä",
            "a/../b",
            &"x".repeat(65),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            EmailAddress::parse("  Jo@Example.ORG ").unwrap().as_str(),
            "jo@example.org"
        );
        for bad in [
            "",
            "jo",
            "jo@",
            "@example.org",
            "jo@localhost",
            "jo doe@example.org",
            "jo@example.org\r\nBcc: x@y.z",
            "\"jo\"@example.org",
            "jo@[127.0.0.1]",
            "Jo <jo@example.org>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(DisplayName::parse("  Jo Doe ").unwrap().as_str(), "Jo Doe");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
    }
}
