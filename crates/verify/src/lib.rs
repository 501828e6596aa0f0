//! Verification of a rendered GitOps tree, offline.
//!
//! WIP front door.

mod cel;
mod field;
mod object;
mod openapi;
mod schemaset;
mod validate;

pub use field::{FieldError, FieldErrorKind, apiserver_message};
pub use object::{ObjectReport, SchemaUse, validate_object};
pub use schemaset::{CompileSummary, SchemaSet, SchemaSetError};
