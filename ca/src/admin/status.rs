//! gRPC statuses for admin API failures: precise codes, messages that say
//! what to fix, and no internal details beyond what an operator can act on.

use tonic::{Code, Status};

use super::validate::InvalidInput;
use crate::store::StoreError;

/// `InvalidArgument` for a refused request field.
pub fn invalid(e: &InvalidInput) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The status for a store failure.
pub fn store(e: &StoreError) -> Status {
    Status::new(store_code(e), e.to_string())
}

/// The gRPC code for a store failure.
pub fn store_code(e: &StoreError) -> Code {
    match e {
        StoreError::NotFound { .. } => Code::NotFound,
        StoreError::AlreadyExists { .. } => Code::AlreadyExists,
        StoreError::Conflict { .. } => Code::Aborted,
        StoreError::Invalid(_) => Code::InvalidArgument,
        StoreError::TokenExpired | StoreError::TokenUsed => Code::FailedPrecondition,
        StoreError::Unreachable { .. } | StoreError::Backend(_) => {
            tracing::warn!(error = %e, "store unavailable");
            Code::Unavailable
        }
        _ => {
            tracing::error!(error = %e, "store failure");
            Code::Internal
        }
    }
}
