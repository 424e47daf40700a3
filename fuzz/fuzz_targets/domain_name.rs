//! DomainName::parse on arbitrary text: never panics, and whatever it
//! accepts is safe to hand to PowerDNS and to a remote shell argument.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpanel::types::DomainName;

fuzz_target!(|raw: &str| {
    let Ok(domain) = DomainName::parse(raw) else { return };
    let name = domain.as_str();
    assert!(!name.is_empty() && name.len() <= 253, "length of {name:?}");
    assert!(
        name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
        "{name:?} has a character outside letters, digits, hyphens and dots"
    );
    assert!(!name.starts_with('-') && !name.starts_with('.') && !name.ends_with('.'), "{name:?}");
    // Parsing is idempotent: the stored form parses to itself.
    assert_eq!(DomainName::parse(name).as_ref().map(DomainName::as_str), Ok(name));
    assert_eq!(domain.fqdn(), format!("{name}."));
});
