//! Identity: address normalisation and resolution of a contact to a customer.
//!
//! The rules (from the context-model anchors): normalise the address; an exact
//! `(channel, address)` match wins; otherwise link on the strongest *verified or
//! carrier-asserted* key — verified external id, then verified email, then carrier-asserted
//! phone; never link on an unverified claim (it only raises a duplicate suspicion); never join two
//! customers whose external ids differ; otherwise create a customer.

pub mod normalize;

use crate::events::Event;
use crate::hash::KeyedMap;
use crate::model::{
    Address, AddressKind, ChannelKind, Customer, CustomerId, CustomerKey, CustomerState, Identity, IdentityId,
    InboundMessage, NormalizedAddress, TenantId, Verification,
};
use crate::store::{LinkKey, Store, Write};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::RwLock;

/// Normalises addresses, caching phone numbers (parsing them is the expensive part).
///
/// The cache has two generations: when the young one is full it becomes the old one (the
/// previous old one is dropped), and a hit in the old generation is promoted. Numbers in steady
/// use stay cached; memory stays bounded at two generations.
#[derive(Debug)]
pub(crate) struct Normalizer {
    default_region: Option<String>,
    phones: RwLock<PhoneCache>,
}

#[derive(Debug, Default)]
struct PhoneCache {
    young: KeyedMap<String, String>,
    old: KeyedMap<String, String>,
}

const PHONE_CACHE_GENERATION: usize = 100_000;

impl Normalizer {
    pub(crate) fn new(default_region: Option<String>) -> Self {
        Normalizer { default_region, phones: RwLock::new(PhoneCache::default()) }
    }

    pub(crate) fn phone(&self, raw: &str) -> Result<String> {
        let promote = {
            let cache = self.phones.read().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.young.get(raw) {
                return Ok(hit.clone());
            }
            cache.old.get(raw).cloned()
        };
        let value = match promote {
            Some(v) => v,
            None => normalize::normalize_phone(raw, self.default_region.as_deref())?,
        };
        let mut cache = self.phones.write().unwrap_or_else(|p| p.into_inner());
        if cache.young.len() >= PHONE_CACHE_GENERATION {
            cache.old = std::mem::take(&mut cache.young);
        }
        cache.young.insert(raw.to_owned(), value.clone());
        Ok(value)
    }

    /// Drops every cached phone spelling (after an erasure: the erased customer's numbers
    /// were cached from its identities, from identities unlinked before, and from claims that
    /// never became identities, and only the last are nowhere on record). The cache fills again
    /// as numbers come in.
    pub(crate) fn forget_phones(&self) {
        let mut cache = self.phones.write().unwrap_or_else(|p| p.into_inner());
        *cache = PhoneCache::default();
    }

    pub(crate) fn address(&self, address: &Address) -> Result<NormalizedAddress> {
        Ok(match address {
            Address::Phone { number } => NormalizedAddress { kind: AddressKind::Phone, value: self.phone(number)? },
            Address::Email { address } => {
                NormalizedAddress { kind: AddressKind::Email, value: normalize::normalize_email(address)? }
            }
            Address::Platform { scope, id } => NormalizedAddress {
                kind: AddressKind::Platform,
                value: normalize::normalize_platform_id(scope.as_deref(), id)?,
            },
        })
    }

    /// The normalised form of a claimed key (external ids are only trimmed and bounded).
    pub(crate) fn key(&self, key: &CustomerKey) -> Result<NormalizedKey> {
        Ok(match key {
            CustomerKey::ExternalId(x) => NormalizedKey::ExternalId(external_id(x)?),
            CustomerKey::Email(e) => NormalizedKey::Address(NormalizedAddress {
                kind: AddressKind::Email,
                value: normalize::normalize_email(e)?,
            }),
            CustomerKey::Phone(p) => {
                NormalizedKey::Address(NormalizedAddress { kind: AddressKind::Phone, value: self.phone(p)? })
            }
        })
    }
}

/// Whether `address`, asserted at `verification`, is trusted enough to link customers: an email
/// only when verified, a phone from carrier-asserted up; other addresses never.
fn links(address: &NormalizedAddress, verification: Verification) -> bool {
    match address.kind {
        AddressKind::Email => verification == Verification::Verified,
        AddressKind::Phone => verification.can_link(),
        AddressKind::Platform => false,
    }
}

/// Validates a host external id: trimmed, 1–256 bytes, no control characters.
pub(crate) fn external_id(raw: &str) -> Result<String> {
    let x = raw.trim();
    if x.is_empty() || x.len() > 256 || x.chars().any(char::is_control) {
        return Err(Error::invalid("external_id", "must be 1 to 256 bytes without control characters"));
    }
    Ok(x.to_owned())
}

/// A claimed key after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NormalizedKey {
    ExternalId(String),
    Address(NormalizedAddress),
}

/// How the sender of an inbound message was matched to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resolution {
    /// The exact `(channel, address)` was already known.
    KnownIdentity,
    /// A new identity was linked to an existing customer through a trusted key.
    Linked {
        /// Which key matched.
        key: LinkedBy,
        /// How far that key was trusted.
        verification: Verification,
    },
    /// A new customer was created.
    Created,
    /// The identity was known but a verified external id showed it is now used by another
    /// person (a shared device): it moved to that customer, whose history is the only one shown.
    Moved {
        /// The previous owner.
        from: CustomerId,
    },
    /// The message had been ingested before; nothing changed.
    Duplicate,
}

/// The key that linked a contact to an existing customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkedBy {
    /// The host's verified user id.
    ExternalId,
    /// A verified email address.
    Email,
    /// A carrier-asserted (or verified) phone number.
    Phone,
}

/// The result of resolving a sender: the customer and identity as they should be after the
/// message, plus the writes and events that get them there.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub customer: Customer,
    pub customer_write: Option<Write<Customer>>,
    pub identity: Identity,
    pub identity_write: Write<Identity>,
    /// Trusted addresses claimed with the message that nobody held yet: new identities of the
    /// customer on the message's channel.
    pub claimed: Vec<Write<Identity>>,
    pub resolution: Resolution,
    pub suspects: Vec<CustomerId>,
    pub events: Vec<Event>,
    pub notes: Vec<String>,
}

/// Follows merge aliases to the last record of the chain (active or erased), however long the
/// chain; `None` if a link of the chain is missing or the chain loops back on itself (which
/// merges never write: an alias always points at a customer that was live). Each customer of
/// the chain is read once.
pub(crate) async fn follow_aliases(
    store: &dyn Store,
    tenant: &TenantId,
    mut id: CustomerId,
) -> Result<Option<Customer>> {
    // Only merged records are remembered: the common case, a live customer, allocates nothing.
    let mut merged = std::collections::HashSet::new();
    loop {
        let Some(c) = store.customer(tenant, id).await? else { return Ok(None) };
        match c.state {
            CustomerState::Merged { into, .. } if merged.insert(id) => id = into,
            CustomerState::Merged { .. } => return Ok(None),
            _ => return Ok(Some(c)),
        }
    }
}

/// Follows merge aliases to the live customer; `None` if missing or erased.
pub(crate) async fn live_customer(store: &dyn Store, tenant: &TenantId, id: CustomerId) -> Result<Option<Customer>> {
    Ok(follow_aliases(store, tenant, id).await?.filter(Customer::is_active))
}

/// Finds the identity with `address` on `channel`, trying the lookup variants of a phone number
/// (the Brazilian ninth digit and the like) when the exact spelling is unknown.
pub(crate) async fn find_identity(
    store: &dyn Store,
    tenant: &TenantId,
    channel: &ChannelKind,
    address: &NormalizedAddress,
) -> Result<Option<Identity>> {
    if let Some(i) = store.identity_by_address(tenant, channel, address).await? {
        return Ok(Some(i));
    }
    for v in other_spellings(address) {
        if let Some(i) = store.identity_by_address(tenant, channel, &v).await? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// The other spellings `address` may be stored under: for a phone, the lookup variants such as
/// the Brazilian ninth digit; none for other kinds.
pub(crate) fn other_spellings(address: &NormalizedAddress) -> Vec<NormalizedAddress> {
    match address.kind {
        AddressKind::Phone => normalize::phone_lookup_variants(&address.value)
            .into_iter()
            .map(|value| NormalizedAddress { kind: AddressKind::Phone, value })
            .collect(),
        _ => Vec::new(),
    }
}

/// The link keys under which `address` may be held: its own spelling, then its other spellings.
fn link_key_candidates(address: &NormalizedAddress) -> impl Iterator<Item = LinkKey> + '_ {
    std::iter::once(address.clone()).chain(other_spellings(address)).map(LinkKey)
}

/// The customer that holds `address` at a linking level, trying phone variants too.
pub(crate) async fn trusted_holder(
    store: &dyn Store,
    tenant: &TenantId,
    address: &NormalizedAddress,
) -> Result<Option<CustomerId>> {
    for key in link_key_candidates(address) {
        let holders = store.customers_by_address(tenant, &key).await?;
        if let Some((c, _)) = holders.into_iter().find(|(_, v)| v.can_link()) {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Whether a customer other than `customer` holds `address` at a linking level (phone
/// variants included), not counting the identity `except` (one that is about to move).
pub(crate) async fn held_by_other(
    store: &dyn Store,
    tenant: &TenantId,
    address: &NormalizedAddress,
    customer: CustomerId,
    except: Option<IdentityId>,
) -> Result<bool> {
    for key in link_key_candidates(address) {
        for (holder, verification) in store.customers_by_address(tenant, &key).await? {
            if holder == customer || !verification.can_link() {
                continue;
            }
            let Some(except) = except else { return Ok(true) };
            // Does the holder keep the address through another identity than the moving one?
            let keeps = store.identities_of(tenant, holder).await?.iter().any(|i| {
                i.id != except
                    && i.verification.can_link()
                    && i.address.kind == key.0.kind
                    && i.address.value == key.0.value
            });
            if keeps {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Everything resolution needs to know about the inbound message, normalised once.
pub(crate) struct Sender<'a> {
    pub msg: &'a InboundMessage,
    pub address: NormalizedAddress,
    pub claims: Vec<(NormalizedKey, Verification)>,
}

impl Sender<'_> {
    fn verified_external_id(&self) -> Option<&str> {
        self.claims.iter().find_map(|(k, v)| match k {
            NormalizedKey::ExternalId(x) if *v == Verification::Verified => Some(x.as_str()),
            _ => None,
        })
    }

    /// Addresses that may link, strongest first: verified emails, then trusted phones.
    fn linking_addresses(&self) -> Vec<(LinkedBy, Verification, &NormalizedAddress)> {
        let sender = std::iter::once((&self.address, self.msg.verification));
        let claimed = self.claims.iter().filter_map(|(k, v)| match k {
            NormalizedKey::Address(a) => Some((a, *v)),
            NormalizedKey::ExternalId(_) => None,
        });
        let all: Vec<_> = sender.chain(claimed).collect();
        let mut out = Vec::new();
        for (a, v) in &all {
            if a.kind == AddressKind::Email && links(a, *v) {
                out.push((LinkedBy::Email, *v, *a));
            }
        }
        for (a, v) in &all {
            if a.kind == AddressKind::Phone && links(a, *v) {
                out.push((LinkedBy::Phone, *v, *a));
            }
        }
        out
    }

    /// Addresses claimed without trust: they may raise suspicion, never link.
    fn untrusted_addresses(&self) -> Vec<&NormalizedAddress> {
        let sender = (LinkKey::of(&self.address).is_some() && !links(&self.address, self.msg.verification))
            .then_some(&self.address);
        sender
            .into_iter()
            .chain(self.claims.iter().filter_map(|(k, v)| match k {
                NormalizedKey::Address(a) if !links(a, *v) => Some(a),
                _ => None,
            }))
            .collect()
    }
}

/// Ids for new records, handed in by the engine so resolution stays deterministic.
pub(crate) trait NewIds: Sync {
    fn customer_id(&self) -> CustomerId;
    fn identity_id(&self) -> IdentityId;
}

/// Resolves the sender of an inbound message to a customer and identity.
pub(crate) async fn resolve(
    store: &dyn Store,
    tenant: &TenantId,
    sender: &Sender<'_>,
    now: DateTime<Utc>,
    ids: &dyn NewIds,
) -> Result<Resolved> {
    let msg = sender.msg;
    let ext = sender.verified_external_id();
    let mut events = Vec::new();
    let mut notes = Vec::new();
    let mut customer_write = None;

    let known = find_identity(store, tenant, &msg.channel, &sender.address).await?;
    let (customer, identity, resolution, identity_expected) = match known {
        Some(mut identity) => {
            let expected = Some(identity.version);
            let owner = live_customer(store, tenant, identity.customer).await?;
            let (customer, resolution) = match (owner, ext) {
                (Some(owner), Some(x)) if owner.external_id.as_deref() != Some(x) => {
                    match store.customer_by_external_id(tenant, x).await? {
                        // Someone else signed in on this identity: it moves to them.
                        Some(holder) if holder.is_active() => (holder, Resolution::Moved { from: owner.id }),
                        _ if owner.external_id.is_none() => {
                            // An anonymous visitor signed in: they are that person.
                            let mut c = owner.clone();
                            c.external_id = Some(x.to_owned());
                            c.updated_at = now;
                            c.version += 1;
                            customer_write = Some(Write { record: c.clone(), expected: Some(owner.version) });
                            events.push(Event::CustomerUpdated { customer: c.id });
                            (c, Resolution::KnownIdentity)
                        }
                        _ => {
                            let c = new_customer(ids.customer_id(), tenant, now, Some(x), msg);
                            customer_write = Some(Write::insert(c.clone()));
                            events.push(Event::CustomerCreated { customer: c.id });
                            (c, Resolution::Moved { from: owner.id })
                        }
                    }
                }
                (Some(owner), _) => (owner, Resolution::KnownIdentity),
                (None, _) => {
                    // The owner was erased or vanished: the identity starts over with a new customer.
                    let c = new_customer(ids.customer_id(), tenant, now, ext, msg);
                    customer_write = Some(Write::insert(c.clone()));
                    events.push(Event::CustomerCreated { customer: c.id });
                    (c, Resolution::Moved { from: identity.customer })
                }
            };
            if let Resolution::Moved { from } = resolution {
                events.push(Event::IdentityMoved { identity: identity.id, from, to: customer.id });
                // The name was the previous person's: it stays with them (an erasure of them
                // must not find it under the new owner); this message's name, if any, is set below.
                identity.display_name = None;
                notes
                    .push("a verified external id showed a different person on this identity; it moved to them".into());
                identity.customer = customer.id;
                if identity.verification.can_link()
                    && LinkKey::of(&identity.address).is_some()
                    && held_by_other(store, tenant, &identity.address, customer.id, Some(identity.id)).await?
                {
                    notes.push("the address stays a verified address of another customer; kept unverified here".into());
                    identity.verification = Verification::Unverified;
                }
            }
            (customer, identity, resolution, expected)
        }
        None => {
            let mut found: Option<(Customer, Resolution)> = None;
            let mut refused_link = false;
            if let Some(x) = ext
                && let Some(c) = store.customer_by_external_id(tenant, x).await?.filter(Customer::is_active)
            {
                found =
                    Some((c, Resolution::Linked { key: LinkedBy::ExternalId, verification: Verification::Verified }));
            }
            if found.is_none() {
                for (by, verification, address) in sender.linking_addresses() {
                    let Some(holder) = trusted_holder(store, tenant, address).await? else { continue };
                    let Some(c) = live_customer(store, tenant, holder).await? else { continue };
                    if let (Some(x), Some(y)) = (ext, c.external_id.as_deref())
                        && x != y
                    {
                        notes.push(format!("{by:?} matched a customer with a different external id; not linked"));
                        refused_link = true;
                        continue;
                    }
                    found = Some((c, Resolution::Linked { key: by, verification }));
                    break;
                }
            }
            let (customer, resolution) = match found {
                Some((mut c, r)) => {
                    if let (Some(x), None) = (ext, c.external_id.as_deref()) {
                        let expected = c.version;
                        c.external_id = Some(x.to_owned());
                        c.updated_at = now;
                        c.version += 1;
                        customer_write = Some(Write { record: c.clone(), expected: Some(expected) });
                        events.push(Event::CustomerUpdated { customer: c.id });
                    }
                    (c, r)
                }
                None => {
                    let c = new_customer(ids.customer_id(), tenant, now, ext, msg);
                    customer_write = Some(Write::insert(c.clone()));
                    events.push(Event::CustomerCreated { customer: c.id });
                    (c, Resolution::Created)
                }
            };
            // A trusted address another customer already holds (we did not link to them, or the
            // stronger key chose someone else) is kept unverified for this customer.
            // (The store holds an address at carrier-asserted or better to one customer, even
            // an email, which links only when verified: such an email is kept unverified too.)
            let verification = if msg.verification.can_link()
                && LinkKey::of(&sender.address).is_some()
                && held_by_other(store, tenant, &sender.address, customer.id, None).await?
            {
                if resolution == Resolution::Created && !refused_link && links(&sender.address, msg.verification) {
                    // Another contact of this person claimed the address since we looked: link
                    // to them instead (the engine re-resolves on a conflict).
                    return Err(Error::Conflict("the sender address was linked concurrently".into()));
                }
                notes.push("the sender address is a verified address of another customer; kept unverified here".into());
                Verification::Unverified
            } else {
                msg.verification
            };
            let identity = Identity::new(
                ids.identity_id(),
                &customer,
                msg.channel.clone(),
                sender.address.clone(),
                msg.sender.raw(),
                verification,
                now,
            );
            events.push(Event::IdentityLinked {
                customer: customer.id,
                identity: identity.id,
                channel: identity.channel.clone(),
                verification,
            });
            (customer, identity, resolution, None)
        }
    };

    let mut identity = identity;
    // Reply windows run from when the customer wrote: the provider's time when it says (a
    // webhook retried for hours arrives late), never later than now.
    identity.touch_inbound(&msg.endpoint, msg.sent_at.map_or(now, |at| at.min(now)));
    if identity.display_name.is_none() {
        identity.display_name.clone_from(&msg.sender_name);
    }
    // A stronger assertion of the same address upgrades the identity.
    if identity_expected.is_some()
        && msg.verification > identity.verification
        && resolution == Resolution::KnownIdentity
        && !(msg.verification.can_link()
            && LinkKey::of(&identity.address).is_some()
            && held_by_other(store, tenant, &identity.address, customer.id, Some(identity.id)).await?)
    {
        identity.verification = msg.verification;
    }
    identity.version = identity_expected.map_or(0, |v| v + 1);
    let identity_write = Write { record: identity.clone(), expected: identity_expected };

    // Trusted addresses claimed alongside the sender (a phone asserted next to a platform id)
    // that nobody holds yet become keys of this customer. One that another customer holds
    // cannot (the sender was known already, or another claim linked them): it makes the two
    // resemble each other, as an untrusted claim of it would.
    let mut claimed: Vec<Write<Identity>> = Vec::new();
    let mut suspects = Vec::new();
    for (_, verification, address) in sender.linking_addresses() {
        if *address == identity.address || claimed.iter().any(|w| w.record.address == *address) {
            continue;
        }
        let holder = trusted_holder(store, tenant, address).await?;
        if let Some(h) = holder
            && h != customer.id
            && !suspects.contains(&h)
        {
            suspects.push(h);
        }
        if holder.is_some() || find_identity(store, tenant, &msg.channel, address).await?.is_some() {
            continue;
        }
        let claim = Identity::new(
            ids.identity_id(),
            &customer,
            msg.channel.clone(),
            address.clone(),
            address.value.clone(),
            verification,
            now,
        );
        events.push(Event::IdentityLinked {
            customer: customer.id,
            identity: claim.id,
            channel: claim.channel.clone(),
            verification,
        });
        claimed.push(Write::insert(claim));
    }

    for address in sender.untrusted_addresses() {
        let Some(key) = LinkKey::of(address) else { continue };
        for (c, _) in store.customers_by_address(tenant, &key).await? {
            if c != customer.id && !suspects.contains(&c) {
                suspects.push(c);
            }
        }
    }
    // A suspicion is raised once per pair: the customer keeps the ones raised, so the same
    // claim on every later message is listed in the outcome again without a second event; and
    // one the other customer already raised about this one is not raised the other way round.
    let mut raised: Vec<CustomerId> = Vec::new();
    for &c in suspects.iter().filter(|c| !customer.suspected_duplicates.contains(c)) {
        let raised_by_other =
            store.customer(tenant, c).await?.is_some_and(|o| o.suspected_duplicates.contains(&customer.id));
        if !raised_by_other {
            raised.push(c);
        }
    }
    let mut customer = customer;
    if !raised.is_empty() {
        let write = customer_write.get_or_insert_with(|| {
            let mut record = customer.clone();
            record.version += 1;
            Write { record, expected: Some(customer.version) }
        });
        write.record.suspected_duplicates.extend(raised.iter().copied());
        write.record.updated_at = now;
        customer = write.record.clone();
        for c in raised {
            events.push(Event::DuplicateSuspected { customer: customer.id, resembles: c });
        }
    }

    Ok(Resolved { customer, customer_write, identity, identity_write, claimed, resolution, suspects, events, notes })
}

fn new_customer(
    id: CustomerId,
    tenant: &TenantId,
    now: DateTime<Utc>,
    ext: Option<&str>,
    msg: &InboundMessage,
) -> Customer {
    let mut c = Customer::new(id, tenant.clone(), now);
    c.external_id = ext.map(str::to_owned);
    c.name.clone_from(&msg.sender_name);
    c
}

#[cfg(test)]
mod tests {
    use crate::Engine;
    use crate::model::{Address, ChannelKind, Content, EndpointId, InboundMessage, TenantId};

    /// The engine's phone-normalisation cache maps the raw number a customer wrote from to its
    /// E.164 form; erasing the customer must take every number it ever gave out of it: its
    /// phone identities, one unlinked before the erasure, and an unverified claim that never
    /// became an identity.
    #[test]
    fn erasure_clears_the_customers_phone_numbers_from_the_normalisation_cache() {
        use crate::model::{CustomerKey, Verification};
        futures::executor::block_on(async {
            let engine = Engine::in_memory();
            let t = TenantId::new("shop").unwrap();
            let sms = |raw: &str, id: &str| {
                InboundMessage::new(
                    ChannelKind::Sms,
                    EndpointId::new("sms-main").unwrap(),
                    Address::phone(raw),
                    id,
                    Content::text("hi"),
                )
            };
            let ana = engine.ingest(&t, sms("+55 11 98765-4321", "SM-1")).await.unwrap();
            engine.ingest(&t, sms("+5511987654321", "SM-2")).await.unwrap();
            // A second number of Ana's, unlinked again before the erasure.
            let old_phone = engine
                .link_identity(
                    &t,
                    ana.customer,
                    ChannelKind::Sms,
                    Address::phone("+55 21 99999-0000"),
                    Verification::Verified,
                )
                .await
                .unwrap();
            engine.unlink_identity(&t, old_phone.id).await.unwrap();
            // A number Ana gave in a message, not trusted enough to become an identity.
            let claim = sms("+55 11 98765-4321", "SM-3")
                .with_claim(CustomerKey::Phone("+55 31 98888-1111".into()), Verification::Unverified);
            engine.ingest(&t, claim).await.unwrap();
            let bob = engine.ingest(&t, sms("+44 7700 900555", "SM-4")).await.unwrap();
            assert_ne!(ana.customer, bob.customer);
            let cached = |engine: &Engine| {
                let cache = engine.normalizer().phones.read().unwrap();
                let mut held: Vec<String> = cache.young.values().chain(cache.old.values()).cloned().collect();
                held.sort();
                held.dedup();
                held
            };
            assert_eq!(
                cached(&engine),
                ["+447700900555", "+5511987654321", "+5521999990000", "+5531988881111"],
                "setup: every number cached"
            );
            engine.erase_customer(&t, ana.customer).await.unwrap();
            assert!(
                cached(&engine).iter().all(|n| n.starts_with("+44")),
                "none of Ana's numbers stays: {:?}",
                cached(&engine)
            );
        });
    }
}
