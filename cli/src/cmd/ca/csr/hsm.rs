//! `meshid ca csr --hsm`: the intermediate's key pair on the PKCS#11 token
//! of the CA config's `[keys.pkcs11]`, and the CSR signed through it.

use std::path::Path;

use anyhow::Context as _;
use meshid_ca::config::CaConfig;
use meshid_ca::csr::{self, CSR_MODE, IntermediateCsr, Output};
use meshid_ca::keymanager::{KeyManager, Pkcs11KeyManager};
use meshid_ca::upstream::CA_KEY_SLOT;

/// Finds or generates the key pair on the token, signs `request` with it
/// and writes the CSR to `out` (refused if it exists, unless `force`).
pub(super) fn run(
    request: &IntermediateCsr,
    config: &Path,
    out: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let cfg = CaConfig::from_file(config)?;
    let keys = open_token(&cfg, config)?;
    let token = cfg.keys.token().context("no token")?;
    let existing = keys.load_signer(CA_KEY_SLOT)?.is_some();
    let key = keys.generate_signer(CA_KEY_SLOT)?;
    let signed = request.sign(&key)?;
    let output = Output {
        path: out,
        contents: signed.pem.as_bytes(),
        mode: CSR_MODE,
    };
    csr::write_outputs(&[output], force)?;
    println!(
        "key   {} ({}, {} on the token; it never leaves it)",
        keys.key_ref(CA_KEY_SLOT),
        token.key_type.name(),
        if existing { "found" } else { "generated" }
    );
    super::print_request(request, out)?;
    println!(
        "next  the PKI team signs the CSR (README: Use your enterprise root); then set\n      \
         [upstream] cert_chain_file = <signed.pem>, root_file = <root.pem> (no key_file) in {}",
        config.display()
    );
    Ok(())
}

/// The token of `cfg`'s `[keys.pkcs11]` (`config` names the file in
/// errors), for `csr --hsm` and `import --hsm`.
pub(in crate::cmd::ca) fn open_token(
    cfg: &CaConfig,
    config: &Path,
) -> anyhow::Result<Pkcs11KeyManager> {
    cfg.keys.check()?;
    let token = cfg.keys.token().with_context(|| {
        format!(
            "{} does not put the CA key on a token; --hsm needs [keys] manager = \"pkcs11\" and [keys.pkcs11]",
            config.display()
        )
    })?;
    // Only the CA key is used: nothing is written to the data directory.
    let data_dir = cfg.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    Ok(Pkcs11KeyManager::open(token, data_dir)?)
}
