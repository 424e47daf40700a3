//! Turns the shipped RDS CA bundle into trust anchors at build time, as
//! webpki-roots ships the web's: parsing its 180 kB of PEM at start took
//! three quarters of the worker's init and costs every function that
//! connects to RDS over TLS about as much (BENCHMARKS.md, "Cold start").
//! `tls::tests` checks the result against the bundle parsed at run time.

use std::fmt::Write as _;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

const BUNDLE: &str = "certs/rds-ca-bundle.pem";

fn main() {
    println!("cargo:rerun-if-changed={BUNDLE}");
    let pem = std::fs::read(BUNDLE).unwrap_or_else(|e| panic!("{BUNDLE}: {e}"));
    let mut code = String::from("&[\n");
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.unwrap_or_else(|e| panic!("{BUNDLE}: certificate {}: {e:?}", i + 1));
        let anchor =
            webpki::anchor_from_trusted_cert(&cert).unwrap_or_else(|e| panic!("{BUNDLE}: certificate {}: {e}", i + 1));
        let constraints = match &anchor.name_constraints {
            Some(der) => format!("Some(Der::from_slice({}))", literal(der)),
            None => "None".into(),
        };
        let _ = writeln!(
            code,
            "TrustAnchor {{ subject: Der::from_slice({}), subject_public_key_info: Der::from_slice({}), \
             name_constraints: {constraints} }},",
            literal(&anchor.subject),
            literal(&anchor.subject_public_key_info),
        );
    }
    code.push(']');
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("rds_trust_anchors.rs"), code).expect("write rds_trust_anchors.rs");
}

fn literal(bytes: &[u8]) -> String {
    let mut s = String::from("b\"");
    for b in bytes {
        let _ = write!(s, "\\x{b:02x}");
    }
    s.push('"');
    s
}
