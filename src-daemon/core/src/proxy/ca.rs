//! A certificate authority for one box: the proxy ends TLS for a
//! provider's API hosts with leaf certificates it signs, and the box
//! trusts it (and only the box: its certificate is put in the box's CA
//! bundle, never in the user's).
//!
//! The key is made when the box opens, is held in memory only and is
//! dropped with the box. The CA is limited three ways, so that even a
//! copy of its key would be worth little: name constraints permit only
//! the hosts the proxy may open, path length 0 forbids intermediates, and
//! it expires after [`LIFETIME`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use zeroize::Zeroizing;

/// How long a box's CA and leaves are valid (a box that runs longer
/// must be started again).
pub const LIFETIME: i64 = 30 * 24 * 3600;

/// A leaf for one host: the certificate chain (leaf, then the CA) and its
/// PKCS#8 key (shown by `Debug` as its length only).
pub struct Leaf {
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// One box's CA.
pub struct BoxCa {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    pem: String,
    hosts: Vec<String>,
    window: (i64, i64),
    leaves: Mutex<HashMap<String, Arc<Leaf>>>,
}

impl std::fmt::Debug for BoxCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxCa")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

fn at(unix: i64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| e.to_string())
}

impl BoxCa {
    /// A CA for box `id`, valid from an hour before `now` (clocks drift)
    /// for [`LIFETIME`], that may sign for `hosts` only (DNS names).
    pub fn new(id: &str, hosts: &[String], now: i64) -> Result<BoxCa, String> {
        let key = KeyPair::generate().map_err(|e| format!("box CA key: {e}"))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Valet Key");
        dn.push(DnType::CommonName, format!("Valet Key box {id}"));
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: hosts
                .iter()
                .map(|h| GeneralSubtree::DnsName(h.clone()))
                .collect(),
            excluded_subtrees: vec![],
        });
        let window = (now - 3600, now + LIFETIME);
        p.not_before = at(window.0)?;
        p.not_after = at(window.1)?;
        let cert = p.self_signed(&key).map_err(|e| format!("box CA: {e}"))?;
        Ok(BoxCa {
            issuer: Issuer::new(p, key),
            der: cert.der().to_vec(),
            pem: cert.pem(),
            hosts: hosts.to_vec(),
            window,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM (what the box trusts).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The leaf for `host` (made once, then kept); refused for a host
    /// the CA may not sign for.
    pub fn leaf(&self, host: &str) -> Result<Arc<Leaf>, String> {
        if !self.hosts.iter().any(|h| h == host) {
            return Err(format!("the box's CA does not sign for {host}"));
        }
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = leaves.get(host) {
            return Ok(l.clone());
        }
        let key = KeyPair::generate().map_err(|e| format!("leaf key: {e}"))?;
        let mut p = CertificateParams::new(vec![host.to_owned()])
            .map_err(|e| format!("leaf for {host}: {e}"))?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, host);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = at(self.window.0)?;
        p.not_after = at(self.window.1)?;
        let cert = p
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("leaf for {host}: {e}"))?;
        let leaf = Arc::new(Leaf {
            chain: vec![cert.der().to_vec(), self.der.clone()],
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        });
        leaves.insert(host.to_owned(), leaf.clone());
        Ok(leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_only_for_its_hosts_and_keeps_each_leaf() {
        let ca = BoxCa::new("b_1", &["api.github.com".into()], 1_800_000_000).expect("ca");
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let a = ca.leaf("api.github.com").expect("leaf");
        let b = ca.leaf("api.github.com").expect("again");
        assert!(Arc::ptr_eq(&a, &b), "one leaf per host");
        assert_eq!(a.chain.len(), 2);
        assert!(!a.key_pkcs8.is_empty());
        let e = ca.leaf("example.com").expect_err("other host");
        assert!(e.contains("does not sign for example.com"), "{e}");
        let other = BoxCa::new("b_2", &["api.github.com".into()], 1_800_000_000).expect("ca");
        assert_ne!(other.pem(), ca.pem(), "a CA per box");
    }
}
