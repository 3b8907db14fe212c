//! Rules of the store contract that every backend checks the same way, whatever its storage.

use super::{ChangeSet, LinkKey, Write};
use crate::model::{
    ChannelKind, Content, ConversationId, CustomerId, CustomerState, IdentityId, MessageId, NormalizedAddress,
    TenantId, Verification,
};
use crate::{Error, Result};

/// Every record in a change set must belong to the tenant it is committed to.
fn check_tenant(tenant: &TenantId, changes: &ChangeSet) -> Result<()> {
    let foreign = changes.customers.iter().any(|w| &w.record.tenant != tenant)
        || changes.identities.iter().any(|w| &w.record.tenant != tenant)
        || changes.conversations.iter().any(|w| &w.record.tenant != tenant)
        || changes.messages.iter().any(|w| &w.record.tenant != tenant);
    if foreign { Err(Error::WrongTenant(tenant.clone())) } else { Ok(()) }
}

/// JSON has no NaN or infinity: a location that cannot be stored faithfully is refused.
fn check_content(changes: &ChangeSet) -> Result<()> {
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

/// Where a customer stands, as far as writes for it are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    Active,
    Merged,
    Erased,
}

impl Standing {
    pub(crate) fn of(state: &CustomerState) -> Standing {
        match state {
            CustomerState::Active => Standing::Active,
            CustomerState::Merged { .. } => Standing::Merged,
            CustomerState::Erased { .. } => Standing::Erased,
        }
    }
}

/// What the contract checks need to know of the stored state before a change set: each
/// backend answers from its own storage (maps, SQL rows, a prefetched snapshot).
pub(crate) trait Lookup {
    /// Version and standing of a stored customer.
    fn customer(&self, id: CustomerId) -> Result<Option<(u64, Standing)>>;
    /// The customer holding an external id.
    fn customer_by_external_id(&self, external_id: &str) -> Result<Option<CustomerId>>;
    /// Version of a stored identity, and whether it is on exactly the given channel and
    /// address (`true` when none is given).
    fn identity(&self, id: IdentityId, at: Option<(&ChannelKind, &NormalizedAddress)>) -> Result<Option<(u64, bool)>>;
    /// The identity holding (channel, address).
    fn identity_by_address(&self, channel: &ChannelKind, address: &NormalizedAddress) -> Result<Option<IdentityId>>;
    /// Identities holding a linking address on any channel: (identity, customer, verification).
    fn link_holders(&self, address: &NormalizedAddress) -> Result<Vec<(IdentityId, CustomerId, Verification)>>;
    /// Version and owner of a stored conversation.
    fn conversation(&self, id: ConversationId) -> Result<Option<(u64, CustomerId)>>;
    /// Version of a stored message.
    fn message_version(&self, id: MessageId) -> Result<Option<u64>>;
    /// The message holding a provider id on a channel.
    fn message_by_key(&self, channel: &ChannelKind, external_id: &str) -> Result<Option<MessageId>>;
}

fn conflict(what: String) -> Error {
    Error::Conflict(what)
}

/// Every check of the store contract, judged against the state before the change set (as
/// `lookup` reports it) and the change set itself. Nothing is written; a backend applies the
/// change set only when this returns `Ok`.
pub(crate) fn check(lookup: &impl Lookup, tenant: &TenantId, changes: &ChangeSet) -> Result<()> {
    check_tenant(tenant, changes)?;
    check_content(changes)?;
    check_written_once(changes)?;
    check_customers(lookup, changes)?;
    check_identities(lookup, changes)?;
    check_owners_active(lookup, changes)?;
    for w in &changes.conversations {
        let stored = lookup.conversation(w.record.id)?.map(|(v, _)| v);
        check_version("conversation", w.record.id, stored, w.expected)?;
    }
    check_messages(lookup, changes)
}

/// One change set writes each record at most once: a second write of the same id would leave
/// the keys it is found by ambiguous.
fn check_written_once(changes: &ChangeSet) -> Result<()> {
    fn once<T, I: PartialEq + std::fmt::Display>(
        entity: &str,
        writes: &[Write<T>],
        id: impl Fn(&T) -> I,
    ) -> Result<()> {
        for (k, w) in writes.iter().enumerate() {
            let this = id(&w.record);
            if writes[..k].iter().any(|o| id(&o.record) == this) {
                return Err(Error::invalid("changes", format!("{entity} {this} is written twice in one change set")));
            }
        }
        Ok(())
    }
    once("customer", &changes.customers, |r| r.id)?;
    once("identity", &changes.identities, |r| r.id)?;
    once("conversation", &changes.conversations, |r| r.id)?;
    once("message", &changes.messages, |r| r.id)
}

/// Customer versions and the external-id unique key, judged on the state after the commit.
fn check_customers(lookup: &impl Lookup, changes: &ChangeSet) -> Result<()> {
    for w in &changes.customers {
        let id = w.record.id;
        check_version("customer", id, lookup.customer(id)?.map(|(v, _)| v), w.expected)?;
    }
    // The external id each written customer holds after the commit (each is written once).
    let final_external =
        |id: CustomerId| changes.customers.iter().find(|w| w.record.id == id).map(|w| w.record.external_id.as_deref());
    for w in &changes.customers {
        let Some(x) = w.record.external_id.as_deref() else { continue };
        if let Some(holder) = lookup.customer_by_external_id(x)? {
            let still_holds = holder != w.record.id && final_external(holder).is_none_or(|e| e == Some(x));
            if still_holds {
                return Err(conflict(format!("external id is already held by customer {holder}")));
            }
        }
        if changes.customers.iter().any(|o| o.record.id != w.record.id && o.record.external_id.as_deref() == Some(x)) {
            return Err(conflict("two customers in one change claim the same external id".into()));
        }
    }
    Ok(())
}

/// Identity versions, immutable addresses, the (channel, address) unique key and link keys.
fn check_identities(lookup: &impl Lookup, changes: &ChangeSet) -> Result<()> {
    for (id, expected) in &changes.identity_deletes {
        let stored = lookup.identity(*id, None)?;
        check_version("identity", *id, stored.map(|(v, _)| v), Some(*expected))?;
    }
    for w in &changes.identities {
        let r = &w.record;
        let stored = lookup.identity(r.id, Some((&r.channel, &r.address)))?;
        check_version("identity", r.id, stored.map(|(v, _)| v), w.expected)?;
        match stored {
            Some((_, true)) => {}
            Some((_, false)) => {
                return Err(Error::invalid("identity.address", "an identity's channel and address never change"));
            }
            None => {
                if let Some(holder) = lookup.identity_by_address(&r.channel, &r.address)?
                    && !changes.identity_deletes.iter().any(|(d, _)| *d == holder)
                {
                    return Err(conflict(format!("{} address is already identity {holder}", r.channel)));
                }
            }
        }
        if changes.identities.iter().filter(|o| o.record.channel == r.channel && o.record.address == r.address).count()
            > 1
        {
            return Err(conflict("two identities in one change share an address".into()));
        }
        if r.verification.can_link() && LinkKey::of(&r.address).is_some() {
            check_link_key(lookup, changes, &r.address)?;
        }
    }
    Ok(())
}

/// A linking-level address may belong to one customer only (after the commit).
fn check_link_key(lookup: &impl Lookup, changes: &ChangeSet, address: &NormalizedAddress) -> Result<()> {
    let written = changes
        .identities
        .iter()
        .map(|w| &w.record)
        .filter(|i| &i.address == address)
        .map(|i| (i.customer, i.verification));
    let stored = stored_link_holders(lookup, changes, address)?;
    let mut owner = None;
    for (customer, _) in written.chain(stored.iter().copied()).filter(|(_, v)| v.can_link()) {
        match owner {
            None => owner = Some(customer),
            Some(o) if o != customer => {
                return Err(conflict(format!("{} is already a verified address of customer {o}", address.value)));
            }
            Some(_) => {}
        }
    }
    check_other_spellings(lookup, changes, address, &stored)
}

/// The holders of `address` stored before the change (customer and verification) that the
/// change neither deletes nor rewrites.
fn stored_link_holders(
    lookup: &impl Lookup,
    changes: &ChangeSet,
    address: &NormalizedAddress,
) -> Result<Vec<(CustomerId, Verification)>> {
    Ok(lookup
        .link_holders(address)?
        .into_iter()
        .filter(|(id, ..)| {
            !changes.identity_deletes.iter().any(|(d, _)| d == id)
                && !changes.identities.iter().any(|w| w.record.id == *id)
        })
        .map(|(_, customer, verification)| (customer, verification))
        .collect())
}

/// An identity inserted at a linking level goes to a customer that already holds the address
/// in some spelling, if anyone does (a mobile number with and without a Brazilian ninth digit
/// is one key): two processes that each found no holder of their own spelling cannot both
/// link it. Records written before this rule, whose spellings other customers already hold,
/// stay usable: their customers are holders. `stored` are the holders of `address` itself
/// ([`stored_link_holders`]).
fn check_other_spellings(
    lookup: &impl Lookup,
    changes: &ChangeSet,
    address: &NormalizedAddress,
    stored: &[(CustomerId, Verification)],
) -> Result<()> {
    let others = crate::identity::other_spellings(address);
    let linking = |i: &crate::model::Identity| i.verification.can_link();
    let mut inserted = changes
        .identities
        .iter()
        .filter(|w| w.expected.is_none() && &w.record.address == address && linking(&w.record))
        .map(|w| w.record.customer)
        .peekable();
    if others.is_empty() || inserted.peek().is_none() {
        return Ok(());
    }
    let mut holders: Vec<(CustomerId, Verification)> = stored.to_vec();
    for spelling in &others {
        holders.extend(stored_link_holders(lookup, changes, spelling)?);
    }
    let written = changes.identities.iter().map(|w| &w.record).filter(|i| others.contains(&i.address));
    holders.extend(written.map(|i| (i.customer, i.verification)));
    holders.retain(|(_, v)| v.can_link());
    let Some((first, _)) = holders.first() else { return Ok(()) };
    match inserted.find(|c| !holders.iter().any(|(h, _)| h == c)) {
        Some(_) => Err(conflict(format!(
            "{} is already a verified address of customer {first} in another spelling",
            address.value
        ))),
        None => Ok(()),
    }
}

/// Identities, conversations and messages written by the change must belong to a customer
/// that is active after the commit.
fn check_owners_active(lookup: &impl Lookup, changes: &ChangeSet) -> Result<()> {
    // One change set usually writes several records of the same customer: look it up once.
    let mut known: Vec<(CustomerId, Option<Standing>)> = Vec::new();
    let mut active = |id: CustomerId| -> Result<()> {
        let standing = match changes.customers.iter().find(|w| w.record.id == id) {
            Some(w) => Some(Standing::of(&w.record.state)),
            None => match known.iter().find(|(c, _)| *c == id) {
                Some((_, standing)) => *standing,
                None => {
                    let standing = lookup.customer(id)?.map(|(_, s)| s);
                    known.push((id, standing));
                    standing
                }
            },
        };
        match standing {
            Some(Standing::Active) => Ok(()),
            Some(Standing::Merged) => Err(conflict(format!("customer {id} was merged"))),
            Some(Standing::Erased) => Err(conflict(format!("customer {id} was erased"))),
            None => Err(conflict(format!("customer {id} does not exist"))),
        }
    };
    for w in &changes.identities {
        active(w.record.customer)?;
    }
    for w in &changes.conversations {
        active(w.record.customer)?;
    }
    for w in &changes.messages {
        let conversation = w.record.conversation;
        let owner = match changes.conversations.iter().find(|c| c.record.id == conversation) {
            Some(c) => Some(c.record.customer),
            None => lookup.conversation(conversation)?.map(|(_, c)| c),
        };
        match owner {
            Some(customer) => active(customer)?,
            None => return Err(conflict(format!("conversation {conversation} does not exist"))),
        }
    }
    Ok(())
}

/// Message versions and the (channel, provider id) unique key, for inserts and for updates
/// that set or change a provider id.
fn check_messages(lookup: &impl Lookup, changes: &ChangeSet) -> Result<()> {
    for w in &changes.messages {
        let r = &w.record;
        check_version("message", r.id, lookup.message_version(r.id)?, w.expected)?;
        let Some(x) = &r.external_id else { continue };
        let taken = lookup.message_by_key(&r.channel, x)?.is_some_and(|holder| holder != r.id);
        let twice = changes
            .messages
            .iter()
            .any(|o| o.record.id != r.id && o.record.channel == r.channel && o.record.external_id.as_ref() == Some(x));
        if taken || twice {
            return Err(conflict(format!("a {} message with provider id {x:?} already exists", r.channel)));
        }
    }
    Ok(())
}
