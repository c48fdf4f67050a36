//! spec/audit.md §1.1: the published forms of an auditor's inputs, and the trust file's
//! JSON form. Everything here parses text an organisation, a log or a vendor publishes into
//! the protocol's types; nothing is trusted that the protocol's own checks would not check
//! again (spec/validation-bundle.md §4.4, spec/audit-log.md §7.1).

use crate::error::{Error, Result};
use crate::fleet::Trust;
use bkv_protocol::audit::VendorRoot;
use bkv_protocol::audit_log::LogAnchors;
use bkv_protocol::audit_log::note::VerifierKey;
use bkv_protocol::crypto::{Algorithm, PublicKey};
use bkv_protocol::validation_bundle::{Anchor, TrustAnchors};
use serde::{Deserialize, Serialize};

fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Published { what: what.into(), detail: detail.into() }
}

/// spec/audit.md §1.1: a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an Ed25519 (RFC 8410) or
/// P-256 (RFC 5480) key, as a [`PublicKey`] (a P-256 point uncompressed).
pub fn public_key_from_pem(what: &str, pem: &str) -> Result<PublicKey> {
    let bad = || invalid(what, "not a PEM PUBLIC KEY (SubjectPublicKeyInfo) of an Ed25519 or a P-256 key");
    let (label, der) =
        ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| bad())?;
    if label != "PUBLIC KEY" {
        return Err(bad());
    }
    public_key_from_spki_der(&der)?.ok_or_else(bad)
}

/// The PEM `PUBLIC KEY` an organisation publishes for `key` (the inverse of
/// [`public_key_from_pem`]).
pub fn public_key_to_pem(key: &PublicKey) -> String {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    let pem = match key.alg {
        Algorithm::Ed25519 => {
            let bytes: [u8; 32] = key.key.as_slice().try_into().expect("validated key");
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .expect("validated key")
                .to_public_key_pem(LineEnding::LF)
        }
        Algorithm::Esp256 => p256::PublicKey::from_sec1_bytes(&key.key)
            .expect("validated key")
            .to_public_key_pem(LineEnding::LF),
    };
    pem.expect("a valid key encodes")
}

/// spec/audit.md §1.1: every block of a PEM file as a vendor root (§1 item 4), in order;
/// each must be a self-signed root certificate ([`vendor_root`]).
pub fn vendor_roots_from_pem(text: &[u8]) -> Result<Vec<VendorRoot>> {
    let mut roots = Vec::new();
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(text).enumerate() {
        let what = format!("certificate {} of the file", i + 1);
        let pem = block.map_err(|e| invalid(&what, format!("not a PEM CERTIFICATE: {e}")))?;
        roots.push(vendor_root(&what, &pem)?);
    }
    if roots.is_empty() {
        return Err(invalid("vendor root certificates", "no PEM CERTIFICATE in the file"));
    }
    Ok(roots)
}

/// A vendor's self-signed root certificate as a [`VendorRoot`]: its subject's one common
/// name and its key, after its self-signature verified.
fn vendor_root(what: &str, pem: &x509_parser::pem::Pem) -> Result<VendorRoot> {
    use x509_parser::prelude::*;
    if pem.label != "CERTIFICATE" {
        return Err(invalid(what, format!("a PEM {:?}, not a CERTIFICATE", pem.label)));
    }
    let (_, cert) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| invalid(what, format!("not an X.509 certificate: {e}")))?;
    if cert.issuer() != cert.subject() {
        return Err(invalid(
            what,
            format!("not self-signed: issued by {}, not by its subject {}", cert.issuer(), cert.subject()),
        ));
    }
    cert.verify_signature(None)
        .map_err(|e| invalid(what, format!("its self-signature does not verify under its own key: {e}")))?;
    let names: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(what, format!("its subject's common name is not a string: {e}")))?;
    let [name] = names.as_slice() else {
        return Err(invalid(what, format!("its subject has {} common names, not one", names.len())));
    };
    let key = public_key_from_spki_der(cert.public_key().raw)
        .ok()
        .flatten()
        .ok_or_else(|| invalid(what, "its key is neither Ed25519 nor P-256"))?;
    Ok(VendorRoot { name: (*name).to_owned(), key })
}

/// An X.509 SubjectPublicKeyInfo (DER) as a [`PublicKey`]: `None` when it is neither an
/// Ed25519 nor a P-256 key, an error when the key is not valid for the protocol
/// (spec/conventions.md §4.2).
fn public_key_from_spki_der(der: &[u8]) -> Result<Option<PublicKey>> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
        return Ok(Some(PublicKey::new(Algorithm::Ed25519, k.to_bytes().to_vec())?));
    }
    match p256::PublicKey::from_public_key_der(der) {
        Ok(k) => Ok(Some(PublicKey::new(Algorithm::Esp256, k.to_encoded_point(false).as_bytes().to_vec())?)),
        Err(_) => Ok(None),
    }
}

/// A time in a trust spec: a TOML date-time (RFC 3339) or POSIX seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum SpecTime {
    Seconds(u64),
    Date(toml::value::Datetime),
}

impl SpecTime {
    /// POSIX seconds as a TOML date-time in UTC (as seconds when out of its range).
    fn at(secs: u64) -> SpecTime {
        let text = i64::try_from(secs)
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        match text.and_then(|t| t.parse().ok()) {
            Some(d) => SpecTime::Date(d),
            None => SpecTime::Seconds(secs),
        }
    }

    fn seconds(&self, what: &str) -> Result<u64> {
        match self {
            SpecTime::Seconds(s) => Ok(*s),
            SpecTime::Date(d) => {
                let t = time::OffsetDateTime::parse(
                    &d.to_string(),
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| {
                    invalid(what, format!("{d} is not an RFC 3339 date-time with an offset: {e}"))
                })?;
                u64::try_from(t.unix_timestamp()).map_err(|_| invalid(what, format!("{d} is before 1970")))
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecAnchor {
    name: String,
    key: String,
    not_before: SpecTime,
    not_after: SpecTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecLog {
    vkey: String,
    #[serde(default)]
    witnesses: Vec<String>,
    threshold: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustSpec {
    fleet_id: String,
    #[serde(default)]
    pinned: Vec<String>,
    third_party: Vec<SpecAnchor>,
    operator: Vec<SpecAnchor>,
    log: SpecLog,
}

/// spec/audit.md §1.1 "Trust spec": the spec naming `trust`'s keys (the inverse of
/// [`trust_from_spec`]), each organisation's key as the file `key_file(role, index)`, with
/// `role` `"third_party"` or `"operator"`.
pub fn trust_spec(trust: &Trust, key_file: &dyn Fn(&str, usize) -> String) -> String {
    let anchors = |role: &str, list: &[Anchor]| -> Vec<SpecAnchor> {
        list.iter()
            .enumerate()
            .map(|(i, a)| SpecAnchor {
                name: a.name.clone(),
                key: key_file(role, i),
                not_before: SpecTime::at(a.not_before),
                not_after: SpecTime::at(a.not_after),
            })
            .collect()
    };
    let spec = TrustSpec {
        fleet_id: trust.anchors.fleet_id.clone(),
        pinned: trust.anchors.pinned.iter().map(hex::encode).collect(),
        third_party: anchors("third_party", &trust.anchors.third_party),
        operator: anchors("operator", &trust.anchors.operator),
        log: SpecLog {
            vkey: trust.log.log_key.encode(),
            witnesses: trust.log.witnesses.iter().map(|w| w.encode()).collect(),
            threshold: trust.log.threshold,
        },
    };
    let body = toml::to_string(&spec).expect("a trust spec is TOML");
    format!("# The trust spec of spec/audit.md §1.1: `bkv trust build trust.toml`.\n{body}")
}

/// spec/audit.md §1.1 "Trust spec": build the trust file's anchors from a TOML spec naming
/// the published keys. `read_key` loads a key named by path (relative to the spec); a value
/// that starts with `-----BEGIN` is the PEM itself.
pub fn trust_from_spec(toml_text: &str, read_key: &dyn Fn(&str) -> Result<String>) -> Result<Trust> {
    let spec: TrustSpec = toml::from_str(toml_text).map_err(|e| invalid("the trust spec", e.to_string()))?;
    let anchors = |role: &str, list: &[SpecAnchor]| -> Result<Vec<Anchor>> {
        list.iter()
            .enumerate()
            .map(|(i, a)| {
                let field = format!("{role}[{i}]");
                let pem = if a.key.trim_start().starts_with("-----BEGIN") {
                    a.key.clone()
                } else {
                    read_key(&a.key)?
                };
                let key = public_key_from_pem(
                    &format!("{field}.key ({})", a.key.lines().next().unwrap_or("")),
                    &pem,
                )?;
                let not_before = a.not_before.seconds(&format!("{field}.not_before"))?;
                let not_after = a.not_after.seconds(&format!("{field}.not_after"))?;
                if not_after < not_before {
                    return Err(invalid(format!("{field}.not_after"), "is before not_before"));
                }
                Ok(Anchor { name: a.name.clone(), key, not_before, not_after })
            })
            .collect()
    };
    let vkey = |field: String, text: &str| {
        VerifierKey::parse(text.trim())
            .map_err(|e| invalid(field, format!("not a verifier key text ({}): {text:?}", e.code())))
    };
    let log_key = vkey("log.vkey".into(), &spec.log.vkey)?;
    let log = LogAnchors {
        origin: log_key.name.clone(),
        log_key,
        witnesses: spec
            .log
            .witnesses
            .iter()
            .enumerate()
            .map(|(i, w)| vkey(format!("log.witnesses[{i}]"), w))
            .collect::<Result<_>>()?,
        threshold: spec.log.threshold,
    };
    let pinned = pinned_digests(&spec.pinned)?;
    let trust = Trust {
        anchors: TrustAnchors {
            v: 1,
            fleet_id: spec.fleet_id,
            third_party: anchors("third_party", &spec.third_party)?,
            operator: anchors("operator", &spec.operator)?,
            pinned,
        },
        log,
    };
    check(&trust)?;
    Ok(trust)
}

/// The `pinned` FleetKeySet digests, each 64 hex digits.
fn pinned_digests(list: &[String]) -> Result<Vec<serde_bytes::ByteBuf>> {
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            hex::decode(h.trim())
                .ok()
                .filter(|d| d.len() == 32)
                .map(serde_bytes::ByteBuf::from)
                .ok_or_else(|| invalid(format!("pinned[{i}]"), "not a SHA-256 digest in hex"))
        })
        .collect()
}

/// spec/validation-bundle.md §4.4 and spec/audit-log.md §7.1 on a trust file's anchors.
pub fn check(trust: &Trust) -> Result<()> {
    TrustAnchors::from_bytes(&trust.anchors.to_bytes())?;
    trust.log.validate()?;
    Ok(())
}

/// One anchor in the trust file's JSON form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonAnchor {
    /// The party's name.
    pub name: String,
    /// COSE algorithm number (-19 Ed25519, -9 ESP256).
    pub alg: i64,
    /// The key, hex (spec/conventions.md §4.2).
    pub key: String,
    /// Its key id, hex (spec/conventions.md §4.3); recomputed and compared when read.
    pub kid: String,
    /// First second its signatures are accepted.
    pub not_before: u64,
    /// Last second its signatures are accepted.
    pub not_after: u64,
}

/// spec/audit.md §1.1 "Trust file": the JSON form (`bkv trust inspect --json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonTrust {
    /// The fleet.
    pub fleet_id: String,
    /// Third-party keys.
    pub third_party: Vec<JsonAnchor>,
    /// Operator keys.
    pub operator: Vec<JsonAnchor>,
    /// Pinned FleetKeySet digests, hex.
    pub pinned: Vec<String>,
    /// The log anchors (verifier keys as text).
    #[schemars(with = "serde_json::Value")]
    pub log: LogAnchors,
}

impl JsonTrust {
    /// The JSON form of a trust file.
    pub fn from_trust(t: &Trust) -> Self {
        let anchors = |list: &[Anchor]| {
            list.iter()
                .map(|a| JsonAnchor {
                    name: a.name.clone(),
                    alg: a.key.alg.cose_id(),
                    key: hex::encode(&a.key.key),
                    kid: hex::encode(a.key.kid()),
                    not_before: a.not_before,
                    not_after: a.not_after,
                })
                .collect()
        };
        JsonTrust {
            fleet_id: t.anchors.fleet_id.clone(),
            third_party: anchors(&t.anchors.third_party),
            operator: anchors(&t.anchors.operator),
            pinned: t.anchors.pinned.iter().map(hex::encode).collect(),
            log: t.log.clone(),
        }
    }

    /// Back to the trust file, checking every key and kid.
    pub fn to_trust(&self) -> Result<Trust> {
        let anchors = |role: &str, list: &[JsonAnchor]| -> Result<Vec<Anchor>> {
            list.iter()
                .enumerate()
                .map(|(i, a)| {
                    let field = format!("{role}[{i}]");
                    let alg = Algorithm::from_cose_id(a.alg).map_err(|_| {
                        invalid(format!("{field}.alg"), format!("{} is not -19 or -9", a.alg))
                    })?;
                    let bytes =
                        hex::decode(&a.key).map_err(|_| invalid(format!("{field}.key"), "not hex"))?;
                    let key = PublicKey::new(alg, bytes)?;
                    if hex::encode(key.kid()) != a.kid.to_ascii_lowercase() {
                        return Err(invalid(
                            format!("{field}.kid"),
                            format!("is not the key's id {}", hex::encode(key.kid())),
                        ));
                    }
                    Ok(Anchor { name: a.name.clone(), key, not_before: a.not_before, not_after: a.not_after })
                })
                .collect()
        };
        let pinned = pinned_digests(&self.pinned)?;
        let trust = Trust {
            anchors: TrustAnchors {
                v: 1,
                fleet_id: self.fleet_id.clone(),
                third_party: anchors("third_party", &self.third_party)?,
                operator: anchors("operator", &self.operator)?,
                pinned,
            },
            log: self.log.clone(),
        };
        check(&trust)?;
        Ok(trust)
    }
}

/// spec/audit.md §1.1 "Trust file": the trust file as CBOR or as its JSON form, told apart by
/// the first byte.
pub fn trust_from_bytes(bytes: &[u8]) -> Result<Trust> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let doc: JsonTrust =
            serde_json::from_slice(bytes).map_err(|e| invalid("the trust file (JSON)", e.to_string()))?;
        return doc.to_trust();
    }
    let trust: Trust = bkv_protocol::cbor::from_slice(bytes)?;
    check(&trust)?;
    Ok(trust)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer as _};

    /// A spec written by [`trust_spec`] builds the same trust file, pinned digests and
    /// several keys per organisation included.
    #[test]
    fn a_written_trust_spec_builds_the_same_trust() {
        let window = |key: PublicKey, name: &str| Anchor {
            name: name.into(),
            key,
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
        };
        let tp = |i: u8| Ed25519Signer::from_seed(&[i; 32]).public_key().clone();
        let op = Esp256Signer::from_scalar(&[9; 32]).expect("scalar").public_key().clone();
        let log_signer = Ed25519Signer::from_seed(&[3; 32]);
        let w_signer = Ed25519Signer::from_seed(&[4; 32]);
        let log_key =
            bkv_protocol::audit_log::note::verifier_key("log.example/bkv", 1, &log_signer).expect("vkey");
        let witness = bkv_protocol::audit_log::note::verifier_key("w.example", 4, &w_signer).expect("vkey");
        let trust = Trust {
            anchors: TrustAnchors {
                v: 1,
                fleet_id: "fleet \"one\"".into(),
                third_party: vec![window(tp(1), "tp"), window(tp(2), "tp")],
                operator: vec![window(op.clone(), "op")],
                pinned: vec![serde_bytes::ByteBuf::from(vec![7; 32])],
            },
            log: LogAnchors {
                origin: "log.example/bkv".into(),
                log_key,
                witnesses: vec![witness],
                threshold: 1,
            },
        };
        let text = trust_spec(&trust, &|role, i| format!("{role}-{i}.pem"));
        let key = |name: &str| -> Result<String> {
            let k = match name {
                "third_party-0.pem" => tp(1),
                "third_party-1.pem" => tp(2),
                "operator-0.pem" => op.clone(),
                other => panic!("{other}"),
            };
            Ok(public_key_to_pem(&k))
        };
        assert_eq!(trust_from_spec(&text, &key).expect(&text), trust);
        assert!(text.contains("not_before = 2023-11-14T22:13:20Z"), "{text}");
    }

    #[test]
    fn pem_round_trips_both_algorithms() {
        let ed = Ed25519Signer::from_seed(&[7; 32]).public_key().clone();
        let p = Esp256Signer::from_scalar(&[9; 32]).expect("scalar").public_key().clone();
        for k in [ed, p] {
            let pem = public_key_to_pem(&k);
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
            assert_eq!(public_key_from_pem("k", &pem).expect("parses"), k);
        }
        let e = public_key_from_pem(
            "operator.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect_err("not a public key");
        assert_eq!(e.code(), "published.invalid");
        assert!(e.to_string().contains("operator.pem"), "{e}");
    }
}
