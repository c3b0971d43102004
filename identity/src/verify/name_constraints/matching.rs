//! Whether one name lies inside one constraint subtree, per name form.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{AttributeTypeAndValue, RelativeDistinguishedName, X509Name};

use super::Violation;

/// The GeneralName form: its context tag number (RFC 5280 §4.2.1.6).
pub(super) fn form(name: &GeneralName<'_>) -> u32 {
    match name {
        GeneralName::OtherName(..) => 0,
        GeneralName::RFC822Name(_) => 1,
        GeneralName::DNSName(_) => 2,
        GeneralName::X400Address(_) => 3,
        GeneralName::DirectoryName(_) => 4,
        GeneralName::EDIPartyName(_) => 5,
        GeneralName::URI(_) => 6,
        GeneralName::IPAddress(_) => 7,
        GeneralName::RegisteredID(_) => 8,
        GeneralName::Invalid(tag, _) => tag.0,
    }
}

/// True if `name` is inside the subtree `base` (both of the same form).
pub(super) fn matches(base: &GeneralName<'_>, name: &GeneralName<'_>) -> Result<bool, Violation> {
    match (base, name) {
        (GeneralName::DNSName(b), GeneralName::DNSName(n)) => Ok(dns(b, n)),
        (GeneralName::URI(b), GeneralName::URI(n)) => {
            let host = uri_host(n).ok_or(Violation::Unsupported("the URI has no host"))?;
            Ok(host_in(b, host))
        }
        (GeneralName::RFC822Name(b), GeneralName::RFC822Name(n)) => email(b, n),
        (GeneralName::IPAddress(b), GeneralName::IPAddress(n)) => ip_in(b, n),
        (GeneralName::DirectoryName(b), GeneralName::DirectoryName(n)) => Ok(dn_prefix(b, n)),
        _ => Err(Violation::Unsupported(
            "the CA constrains a name form meshid does not check",
        )),
    }
}

/// `example.org` matches itself and subdomains; `.example.org` subdomains only.
fn dns(base: &str, name: &str) -> bool {
    if base.is_empty() {
        return true;
    }
    let split = name.len().checked_sub(base.len());
    let Some((head, tail)) = split.and_then(|at| name.split_at_checked(at)) else {
        return false;
    };
    if !tail.eq_ignore_ascii_case(base) {
        return false;
    }
    if base.starts_with('.') {
        !head.is_empty()
    } else {
        head.is_empty() || head.ends_with('.')
    }
}

/// URI and email host rule: `host` exactly, or `.domain` for subdomains only.
fn host_in(base: &str, host: &str) -> bool {
    if base.is_empty() {
        return true;
    }
    if base.starts_with('.') {
        return host.len() > base.len()
            && host
                .get(host.len() - base.len()..)
                .is_some_and(|t| t.eq_ignore_ascii_case(base));
    }
    host.eq_ignore_ascii_case(base)
}

/// The host of `scheme://[userinfo@]host[:port][/path...]`, if there is one.
pub(super) fn uri_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then_some(host)
}

/// A mailbox constraint matches exactly; a host or `.domain` matches the
/// mailbox's host by the URI rule.
fn email(base: &str, name: &str) -> Result<bool, Violation> {
    let (local, host) = name
        .rsplit_once('@')
        .ok_or(Violation::Unsupported("the email address has no @"))?;
    Ok(match base.rsplit_once('@') {
        Some((b_local, b_host)) => local == b_local && host.eq_ignore_ascii_case(b_host),
        None => host_in(base, host),
    })
}

/// An address inside an address/mask constraint of the same family.
fn ip_in(base: &[u8], name: &[u8]) -> Result<bool, Violation> {
    if base.len() != 8 && base.len() != 32 {
        return Err(Violation::Unsupported(
            "an iPAddress constraint is not an address and a mask",
        ));
    }
    if name.len() != 4 && name.len() != 16 {
        return Err(Violation::Unsupported(
            "the IP address has an invalid length",
        ));
    }
    let (addr, mask) = base.split_at(base.len() / 2);
    if addr.len() != name.len() {
        return Ok(false);
    }
    Ok(addr
        .iter()
        .zip(mask)
        .zip(name)
        .all(|((a, m), n)| a & m == n & m))
}

/// An IP address SAN as text, if it has a valid length.
pub(super) fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The RDNs of `base` are the first RDNs of `name`.
fn dn_prefix(base: &X509Name<'_>, name: &X509Name<'_>) -> bool {
    let mut name_rdns = name.iter();
    base.iter()
        .all(|b| name_rdns.next().is_some_and(|n| rdn_eq(b, n)))
}

/// Same attributes in any order (an RDN is a SET).
fn rdn_eq(a: &RelativeDistinguishedName<'_>, b: &RelativeDistinguishedName<'_>) -> bool {
    a.iter().count() == b.iter().count() && a.iter().all(|x| b.iter().any(|y| attr_eq(x, y)))
}

/// Same type and value; strings compare case-insensitively with runs of
/// spaces collapsed (a simplification of RFC 4518 that covers ASCII names);
/// other values compare byte for byte.
fn attr_eq(a: &AttributeTypeAndValue<'_>, b: &AttributeTypeAndValue<'_>) -> bool {
    if a.attr_type() != b.attr_type() {
        return false;
    }
    match (a.as_str(), b.as_str()) {
        (Ok(x), Ok(y)) => {
            let norm =
                |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_lowercase).collect() };
            norm(x) == norm(y)
        }
        _ => {
            a.attr_value().tag() == b.attr_value().tag()
                && a.attr_value().data == b.attr_value().data
        }
    }
}
