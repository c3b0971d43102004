//! Loading a PKCS#11 module and finding the token in it.
//!
//! A module is initialised once per process (`C_Initialize` may not be
//! repeated, and `C_Finalize` would end every other user's sessions), so
//! the loaded modules are kept for the life of the process and shared by
//! every key manager (and test) that names the same path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::slot::Slot;

use super::{Pkcs11Error, describe};

/// The process-wide handle of the PKCS#11 module at `path`, loaded and
/// initialised (with OS locking) on first use.
pub fn module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let failed = |reason: String| Pkcs11Error::Module {
        module: path.display().to_string(),
        reason,
    };
    let key = path.canonicalize().map_err(|e| failed(e.to_string()))?;
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = modules.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| failed(describe(&e)))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(describe(&e))),
    }
    modules.insert(key, ctx.clone());
    Ok(ctx)
}

/// How the token is named in the config.
#[derive(Debug, Clone, Copy)]
pub(super) enum TokenRef<'a> {
    /// By CKA token label.
    Label(&'a str),
    /// By slot ID.
    Slot(u64),
}

/// The slot holding the token and the token's label.
pub(super) fn find_token(
    ctx: &Pkcs11,
    module_path: &Path,
    token: TokenRef<'_>,
) -> Result<(Slot, String), Pkcs11Error> {
    let call = |e: Error| Pkcs11Error::Call {
        op: "C_GetSlotList",
        token: module_path.display().to_string(),
        reason: describe(&e),
    };
    let mut present = Vec::new();
    for slot in ctx.get_slots_with_initialized_token().map_err(call)? {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim_end().to_owned();
        let hit = match token {
            TokenRef::Label(want) => label == want,
            TokenRef::Slot(id) => slot.id() == id,
        };
        if hit {
            return Ok((slot, label));
        }
        present.push(format!("{label:?} (slot {})", slot.id()));
    }
    Err(Pkcs11Error::TokenNotFound {
        token: match token {
            TokenRef::Label(l) => format!("{l:?}"),
            TokenRef::Slot(id) => format!("in slot {id}"),
        },
        module: module_path.display().to_string(),
        present: if present.is_empty() {
            "none".into()
        } else {
            present.join(", ")
        },
    })
}
