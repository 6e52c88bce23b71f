//! Cloud storage (work in progress, issue 6): what is here so far is the part every operation
//! stands on — cloud paths that cannot escape the cloud folder ([`CloudPath`]) and signed grants
//! that allow exactly one operation on one path for one session until they expire ([`Grant`],
//! [`GrantKey`]). The endpoint, the transfers, the connector and the metadata come next.

mod error;
mod grant;
mod path;

pub use error::{CloudError, CloudErrorCode};
pub use grant::{CloudOperation, Grant, GrantError, GrantKey};
pub use path::{CloudPath, PathError, MAX_PATH};
