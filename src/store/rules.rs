//! Rules of the store contract that every backend checks the same way, whatever its storage.

use super::ChangeSet;
use crate::model::{Content, TenantId};
use crate::{Error, Result};

/// Every record in a change set must belong to the tenant it is committed to.
pub(crate) fn check_tenant(tenant: &TenantId, changes: &ChangeSet) -> Result<()> {
    let foreign = changes.customers.iter().any(|w| &w.record.tenant != tenant)
        || changes.identities.iter().any(|w| &w.record.tenant != tenant)
        || changes.conversations.iter().any(|w| &w.record.tenant != tenant)
        || changes.messages.iter().any(|w| &w.record.tenant != tenant);
    if foreign { Err(Error::WrongTenant(tenant.clone())) } else { Ok(()) }
}

/// JSON has no NaN or infinity: a location that cannot be stored faithfully is refused.
pub(crate) fn check_content(changes: &ChangeSet) -> Result<()> {
    for w in &changes.messages {
        if let Content::Location { latitude, longitude, .. } = &w.record.content {
            if !latitude.is_finite() {
                return Err(Error::invalid("content.latitude", format!("{latitude} is not a finite number")));
            }
            if !longitude.is_finite() {
                return Err(Error::invalid("content.longitude", format!("{longitude} is not a finite number")));
            }
        }
    }
    Ok(())
}

/// An insert (`expected: None`) must find nothing; an update must find exactly `expected`.
pub(crate) fn check_version(
    entity: &'static str,
    id: impl std::fmt::Display,
    stored: Option<u64>,
    expected: Option<u64>,
) -> Result<()> {
    match (stored, expected) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(Error::Conflict(format!("{entity} {id} already exists"))),
        (None, Some(_)) => Err(Error::Conflict(format!("{entity} {id} no longer exists"))),
        (Some(s), Some(e)) if s == e => Ok(()),
        (Some(s), Some(e)) => Err(Error::Conflict(format!("{entity} {id} is at version {s}, expected {e}"))),
    }
}
