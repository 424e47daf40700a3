//! Turns the shipped CA files into trust anchors at build time, as
//! webpki-roots ships the web's: parsing the RDS bundle's 180 kB of PEM at
//! start took three quarters of the worker's init and cost every function
//! that connects to RDS over TLS about as much, and the Amazon Trust
//! Services roots were a tenth of the init of every function with an AWS
//! client (BENCHMARKS.md, "Cold start"). `tls::tests` checks the results
//! against the files parsed at run time.

use std::fmt::Write as _;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// Each PEM file and the Rust file its anchors are written to (in OUT_DIR).
const ANCHORS: [(&str, &str); 2] = [
    ("certs/rds-ca-bundle.pem", "rds_trust_anchors.rs"),
    ("certs/amazon-trust-services.pem", "amazon_trust_anchors.rs"),
];

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (pem_file, rust_file) in ANCHORS {
        println!("cargo:rerun-if-changed={pem_file}");
        let code = anchors(pem_file);
        std::fs::write(out.join(rust_file), code).unwrap_or_else(|e| panic!("write {rust_file}: {e}"));
    }
}

/// A Rust slice expression of `pem_file`'s certificates as trust anchors.
fn anchors(pem_file: &str) -> String {
    let pem = std::fs::read(pem_file).unwrap_or_else(|e| panic!("{pem_file}: {e}"));
    let mut code = String::from("&[\n");
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.unwrap_or_else(|e| panic!("{pem_file}: certificate {}: {e:?}", i + 1));
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .unwrap_or_else(|e| panic!("{pem_file}: certificate {}: {e}", i + 1));
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
    code
}

fn literal(bytes: &[u8]) -> String {
    let mut s = String::from("b\"");
    for b in bytes {
        let _ = write!(s, "\\x{b:02x}");
    }
    s.push('"');
    s
}
