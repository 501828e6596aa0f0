//! The output stage: compare a render with the tree on disk ([`plan`]), then write it ([`apply`]).
//!
//! **Invariants**
//! - Nothing is written unless every template rendered and every secret was sealed: the whole
//!   tree is computed in memory first.
//! - A `*.sops.*` output reaches the disk only as the bytes the [`Sealer`] returned; temporary
//!   files hold those sealed bytes too, never plaintext.
//! - Every file is replaced atomically (temporary file in the same directory, fsync, rename), so
//!   at every instant a path holds either its old or its new contents.
//! - The render manifest (`.render-manifest.json` at the output root) lists every file this
//!   stage wrote with the SHA-256 of the bytes written. Only files it lists are ever removed, and
//!   only when their bytes are still the ones recorded; a file edited since is kept with a
//!   warning. A rendered path whose file on disk is not the recorded one (edited by hand, or
//!   never written by us) is a conflict and is not overwritten unless asked.
//! - The manifest is written after the files. Before the first file is touched, a journal
//!   version of it (`"complete": false`) records both the old and the new hash of every file
//!   about to change, so a run killed half-way is recognised and finished by the next run.

mod applying;
mod lock;
mod manifest;
mod paths;
mod planning;
mod read;

pub use applying::{ApplyError, ApplyOptions, apply};
pub use lock::{LOCK_FILE, OutputLock, lock};
pub use manifest::{MANIFEST_FILE, MANIFEST_MAX_BYTES};
pub(crate) use paths::{is_inside_git, is_reserved};
pub use paths::{is_secret, may_remove};
pub use planning::{Action, Counts, Plan, PlanOptions, Planned, Sealer, plan};

/// The largest existing output read to compare with its new version.
pub const OUTPUT_MAX_BYTES: u64 = 32 << 20;
