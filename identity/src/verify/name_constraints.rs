//! RFC 5280 §4.2.1.10 name constraints, applied along a verified path.
//!
//! Every CA certificate in the path (trust anchor included, as OpenSSL and
//! Envoy do) that carries `nameConstraints` constrains the names of every
//! certificate below it: the leaf always, intermediates unless self-issued
//! (§6.1.4 (b)). The names of a certificate are its subject (as a
//! `directoryName`, when not empty), its subjectAltName entries and, when it
//! has no subjectAltName, the `emailAddress` attributes of its subject (as
//! `rfc822Name`).
//!
//! For each constrained name form: a name inside any excluded subtree fails
//! (excluded wins); if the CA permits subtrees of the name's form, the name
//! must be inside one of them. Checking each CA on its own is the same as
//! §6.1's intersection of permitted and union of excluded subtrees.
//!
//! Supported forms and how they match (see [`matching`]):
//! - `dNSName`: `example.org` matches itself and every subdomain;
//!   `.example.org` matches subdomains only; an empty constraint matches all.
//! - `uniformResourceIdentifier`: on the URI's host (for `spiffe://` IDs the
//!   trust domain); `example.org` matches that host exactly, `.example.org`
//!   its subdomains only. A URI without a host cannot be checked and fails.
//! - `iPAddress`: address and mask, IPv4 or IPv6.
//! - `rfc822Name`: a mailbox (`a@example.org`), a host (`example.org`) or
//!   subdomains (`.example.org`).
//! - `directoryName`: the constraint's RDNs are a prefix of the name's.
//!
//! Constraints of any other form (otherName, x400Address, ediPartyName,
//! registeredID, or an entry that did not parse) fail closed whenever a name
//! of that form appears below the CA, whether or not the extension is marked
//! critical. So does a malformed constraint. The `minimum`/`maximum` fields of
//! a subtree are not read (RFC 5280 requires 0 and absent).

mod matching;

use x509_parser::extensions::{GeneralName, GeneralSubtree, NameConstraints};
use x509_parser::prelude::X509Certificate;

use super::SvidError;

/// Checks the name constraints of `path`: the leaf first, the trust anchor last.
pub(super) fn check_path(path: &[&X509Certificate<'_>]) -> Result<(), SvidError> {
    for (ca_pos, ca) in path.iter().enumerate().skip(1) {
        let Some(nc) = ca.name_constraints().map_err(|_| SvidError::Malformed)? else {
            continue;
        };
        for (pos, cert) in path.iter().enumerate().take(ca_pos) {
            if pos > 0 && cert.subject().as_raw() == cert.issuer().as_raw() {
                continue; // self-issued intermediate
            }
            for name in names_of(cert)? {
                check_name(nc.value, &name).map_err(|v| v.into_error(pos, ca_pos, &name))?;
            }
        }
    }
    Ok(())
}

/// The names of `cert` that name constraints apply to.
fn names_of<'a>(cert: &'a X509Certificate<'a>) -> Result<Vec<GeneralName<'a>>, SvidError> {
    let mut names = Vec::new();
    if cert.subject().iter().next().is_some() {
        names.push(GeneralName::DirectoryName(cert.subject().clone()));
    }
    match cert
        .subject_alternative_name()
        .map_err(|_| SvidError::Malformed)?
    {
        Some(san) => names.extend(san.value.general_names.iter().cloned()),
        None => {
            for email in cert.subject().iter_email() {
                let mailbox = email.as_str().map_err(|_| SvidError::Malformed)?;
                names.push(GeneralName::RFC822Name(mailbox));
            }
        }
    }
    Ok(names)
}

/// How one name broke one CA's constraints.
#[derive(Debug, PartialEq, Eq)]
enum Violation {
    NotPermitted,
    Excluded,
    Unsupported(&'static str),
}

impl Violation {
    fn into_error(self, position: usize, ca: usize, name: &GeneralName<'_>) -> SvidError {
        let name = describe(name);
        match self {
            Self::NotPermitted => SvidError::NameNotPermitted { position, ca, name },
            Self::Excluded => SvidError::NameExcluded { position, ca, name },
            Self::Unsupported(reason) => SvidError::NameConstraintUnsupported {
                position,
                ca,
                name,
                reason,
            },
        }
    }
}

/// Checks one name against one CA's constraints.
fn check_name(nc: &NameConstraints<'_>, name: &GeneralName<'_>) -> Result<(), Violation> {
    let form = matching::form(name);
    let excluded = of_form(&nc.excluded_subtrees, form);
    let permitted = of_form(&nc.permitted_subtrees, form);
    for base in &excluded {
        if matching::matches(base, name)? {
            return Err(Violation::Excluded);
        }
    }
    if permitted.is_empty() {
        return Ok(());
    }
    for base in &permitted {
        if matching::matches(base, name)? {
            return Ok(());
        }
    }
    Err(Violation::NotPermitted)
}

/// The subtree bases of one name form.
fn of_form<'n, 'a>(
    subtrees: &'n Option<Vec<GeneralSubtree<'a>>>,
    form: u32,
) -> Vec<&'n GeneralName<'a>> {
    subtrees
        .iter()
        .flatten()
        .map(|s| &s.base)
        .filter(|base| matching::form(base) == form)
        .collect()
}

/// A short, readable rendering of a name for error messages.
fn describe(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(s) => format!("DNS name {s:?}"),
        GeneralName::URI(s) => format!("URI {s:?}"),
        GeneralName::RFC822Name(s) => format!("email {s:?}"),
        GeneralName::IPAddress(b) => match matching::ip(b) {
            Some(ip) => format!("IP address {ip}"),
            None => "an IP address of invalid length".to_owned(),
        },
        GeneralName::DirectoryName(n) => format!("subject {n:?}", n = n.to_string()),
        other => format!("a name of form {}", matching::form(other)),
    }
}

#[cfg(test)]
mod tests;
