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
        let valid_chars = raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
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
        let parsed =
            email_address::EmailAddress::from_str(trimmed).map_err(|_| "is not a valid email address".to_string())?;
        // Quoted local parts, IP-literal domains and display names are valid
        // RFC 5322 but not something a customer or staff member types.
        let domain = parsed.domain();
        if parsed.local_part().starts_with('"') || domain.starts_with('[') || !domain.contains('.') {
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

/// A domain name, ready for PowerDNS and a shell argument: lower-case ASCII
/// letters, digits and hyphens in labels, at most 253 characters. What an
/// order names ([`DomainName::parse`]) is also registrable: trimmed,
/// lower-cased, converted to ASCII with strict IDNA (UTS #46 with STD3
/// rules, hyphen checks and DNS lengths), under a known public suffix and
/// exactly one label below it (not itself a public suffix, not a subdomain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<DomainName, String> {
        let ascii = Self::lookup(raw)?.0;
        let known_suffix = psl::suffix(ascii.as_bytes()).is_some_and(|s| s.is_known());
        if !known_suffix {
            return Err("must end in a known public suffix (e.g. .com)".into());
        }
        match psl::domain(ascii.as_bytes()) {
            Some(registrable) if registrable.as_bytes() == ascii.as_bytes() => Ok(DomainName(ascii)),
            Some(_) => Err("must be a registrable domain, not a subdomain".into()),
            None => Err("is a public suffix, not a domain".into()),
        }
    }

    /// A name to look for among ours (a `?domain=` filter), spelled as
    /// [`Self::parse`] spells it (trimmed, lower-case, IDNA to ASCII) and
    /// checked as a host name, without the ordering policy: a name we could
    /// not have stored finds nothing. (The public suffix list is 0.65 MB of
    /// code; only the functions that take orders link it.)
    pub fn lookup(raw: &str) -> Result<DomainName, String> {
        let trimmed = raw.trim();
        // One trailing dot is the fully qualified spelling of the same name.
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > 1000 {
            return Err("is too long".into());
        }
        let ascii = idna::domain_to_ascii_strict(&trimmed.to_lowercase())
            .map_err(|_| "is not a valid domain name".to_string())?;
        check_host_syntax(&ascii)?;
        Ok(DomainName(ascii))
    }

    /// A name read back from our own database, where only [`Self::parse`]
    /// put it. Checks what makes it safe to hand to PowerDNS, nginx and a
    /// shell (ASCII letters, digits and hyphens, DNS lengths, two labels at
    /// least), not the ordering policy: the public suffix list changes, and
    /// a service ordered under an older list must still be provisioned,
    /// suspended and terminated. (It also keeps the list, 0.65 MB of code,
    /// out of the worker.)
    pub fn stored(raw: &str) -> Result<DomainName, String> {
        check_host_syntax(raw)?;
        if !raw.contains('.') {
            return Err("must have at least two labels".into());
        }
        Ok(DomainName(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fully qualified form PowerDNS uses (`example.com.`).
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }
}

/// Lower-case ASCII letters, digits and hyphens in dot-separated labels of
/// 1 to 63 characters, none starting or ending with a hyphen; 1 to 253 in all.
fn check_host_syntax(ascii: &str) -> Result<(), String> {
    if ascii.is_empty() || ascii.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    for label in ascii.split('.') {
        let ldh = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ldh {
            return Err("must be letters, digits and hyphens in dot-separated labels".into());
        }
    }
    Ok(())
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number as people type it: digits with optional `+`, spaces,
/// dots, hyphens and parentheses; 3 to 32 characters, at least 3 digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Phone, String> {
        let trimmed = raw.trim();
        let allowed = trimmed
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')') || (c == '+' && i == 0));
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if !allowed || !(3..=32).contains(&trimmed.len()) || digits < 3 {
            return Err("must be a phone number like +15550100".into());
        }
        Ok(Phone(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A UUID sent as text (a query parameter).
pub fn parse_uuid(raw: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(raw).map_err(|_| "must be a UUID".to_string())
}

/// A closed set of upper-case names (roles, statuses, types). The names and
/// the list of variants come from strum's derives on the enum; this adds the
/// `as_str` every caller uses and a parse whose error lists the names.
pub trait Named: Copy + 'static + strum::VariantArray + Into<&'static str> {
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every variant, in declaration order.
    fn all() -> &'static [Self] {
        Self::VARIANTS
    }

    /// The variant named exactly `raw` (case included), else "must be one of …".
    fn from_name(raw: &str) -> Result<Self, String> {
        Self::VARIANTS.iter().copied().find(|v| v.as_str() == raw).ok_or_else(|| {
            let names: Vec<&str> = Self::VARIANTS.iter().map(|v| v.as_str()).collect();
            format!("must be one of {}", names.join(", "))
        })
    }
}

impl<T: Copy + 'static + strum::VariantArray + Into<&'static str>> Named for T {}

/// Binds and reads a [`Named`] enum as its name in a `text` column (whose
/// CHECK constraint holds the same names), so queries take and return the
/// enum itself. Text rather than a PostgreSQL enum type: `query_typed` needs
/// each parameter's type up front, and an enum type's OID differs per database.
macro_rules! text_column {
    ($($ty:ty),+ $(,)?) => {$(
        impl tokio_postgres::types::ToSql for $ty {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                <&str as tokio_postgres::types::ToSql>::to_sql(&$crate::types::Named::as_str(*self), ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $ty {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<$ty, Box<dyn std::error::Error + Sync + Send>> {
                let name = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Ok(<$ty as $crate::types::Named>::from_name(name)?)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    )+};
}
pub(crate) use text_column;

/// Declares a closed set of names (roles, statuses, types; upper case unless
/// `names = "snake_case";` comes first): the enum with its strum names, serde
/// and OpenAPI forms, and its `text` column mapping. Declaration order is the
/// derived `Ord`.
macro_rules! named_enum {
    (names = $case:tt; $(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$variant_meta:meta])* $variant:ident),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
            strum::IntoStaticStr,
            strum::VariantArray,
            strum::EnumString,
            strum::Display,
        )]
        #[serde(rename_all = $case)]
        #[strum(serialize_all = $case)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        $crate::types::text_column!($name);
    };
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident),+ $(,)? }) => {
        $crate::types::named_enum! {
            names = "SCREAMING_SNAKE_CASE";
            $(#[$meta])* $vis enum $name { $($(#[$variant_meta])* $variant),+ }
        }
    };
}
pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["demo", "a", "starter-monthly", "a1-b2-c3", &"x".repeat(64)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Demo", "-a", "a-", "a--b", "a_b", "a b", "ä", "a/../b", &"x".repeat(65)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(EmailAddress::parse("  Jo@Example.ORG ").unwrap().as_str(), "jo@example.org");
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
    fn domains() {
        assert_eq!(DomainName::parse(" Jo-Example.COM ").unwrap().as_str(), "jo-example.com");
        assert_eq!(DomainName::parse("example.com.").unwrap().fqdn(), "example.com.");
        assert_eq!(DomainName::parse("bücher.de").unwrap().as_str(), "xn--bcher-kva.de");
        assert_eq!(DomainName::parse("example.co.uk").unwrap().as_str(), "example.co.uk");
        for bad in [
            "",
            ".",
            "com",
            "co.uk",
            "localhost",
            "example",
            "example.invalidtld",
            "www.example.com",
            "-example.com",
            "example-.com",
            "exa_mple.com",
            "exa mple.com",
            "example..com",
            "example.com;rm -rf /",
            "$(reboot).com",
            "../../etc/passwd",
            "example.com\0",
            "exam\u{0}ple.com",
            "ex\u{202e}ample.com",
            "a\r\nb.com",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(DomainName::parse(&long_label).is_err());
    }

    #[test]
    fn lookups_spell_names_as_orders_do_without_the_suffix_policy() {
        assert_eq!(DomainName::lookup(" Bücher.DE. ").unwrap().as_str(), "xn--bcher-kva.de");
        assert_eq!(DomainName::lookup("www.example.com").unwrap().as_str(), "www.example.com");
        for bad in ["", "exa mple.com", "-example.com", "example..com", "$(id).com"] {
            assert!(DomainName::lookup(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_domains_keep_their_name_whatever_the_suffix_list_says() {
        // Names parse() accepted read back as they are, and so do names
        // under a suffix that is not on today's list or is one itself.
        for name in ["jo-example.com", "xn--bcher-kva.de", "example.co.uk", "example.invalidtld", "co.uk"] {
            assert_eq!(DomainName::stored(name).unwrap().as_str(), name);
        }
        // What is unsafe for PowerDNS, nginx or a shell is still refused.
        for bad in [
            "",
            "com",
            "Example.com",
            "bücher.de",
            "-example.com",
            "example..com",
            "exa mple.com",
            "example.com;reboot",
            "$(id).com",
            "example.com.",
            "a\r\nb.com",
        ] {
            assert!(DomainName::stored(bad).is_err(), "{bad:?}");
        }
        assert!(DomainName::stored(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn phones() {
        assert!(Phone::parse("+15550100").is_ok());
        assert!(Phone::parse("+1 (555) 010-0100").is_ok());
        for bad in ["", "12", "call me", "+1+2+3", "555\n0100", &"1".repeat(33)] {
            assert!(Phone::parse(bad).is_err(), "{bad:?}");
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
