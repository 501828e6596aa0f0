//! The operating system's random source.

use crate::error::Error;

pub(crate) fn fill(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::getrandom(buf)
        .map_err(|e| Error::crypto(&format!("the operating system's random source failed: {e}")))
}
