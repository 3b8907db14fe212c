//! The in-memory store: always compiled, the same semantics as a database backend.

use super::rules::{Lookup, Standing, check};
use super::{
    ChangeSet, Committed, CustomerSnapshot, LinkKey, MessageQuery, MessageScope, Store, ThreadKey, ThreadKeyClaim,
};
use crate::events::StoredEvent;
use crate::hash::{IdMap, KeyedMap, KeyedSet};
use crate::idgen::IdGen;
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, EndpointActivity, EndpointId,
    EventId, Identity, IdentityId, Message, MessageId, NormalizedAddress, TenantId, Verification,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A [`Store`] that keeps everything in memory, for tests and single-process hosts.
///
/// Cloning gives another handle to the same data. Each tenant's data sits behind its own lock,
/// so tenants never contend with each other.
#[derive(Debug, Default, Clone)]
pub struct InMemoryStore {
    tenants: Arc<RwLock<KeyedMap<TenantId, Arc<RwLock<TenantData>>>>>,
}

fn kind_index(kind: AddressKind) -> usize {
    match kind {
        AddressKind::Phone => 0,
        AddressKind::Email => 1,
        AddressKind::Platform => 2,
    }
}

/// The strings of a stored identity in one allocation — normalised address, raw address,
/// display name — and its key in the address index. A lookup by address finds the whole
/// identity in the probed bucket and this one block (the key comparison reads it anyway).
#[derive(Debug)]
struct PackedKey {
    text: Box<str>,
    value_len: usize,
    raw_len: usize,
    has_display: bool,
}

impl PackedKey {
    fn new(identity: &Identity) -> Self {
        let (value, raw, display) = (&identity.address.value, &identity.raw_address, identity.display_name.as_deref());
        let mut text = String::with_capacity(value.len() + raw.len() + display.map_or(0, str::len));
        text.push_str(value);
        text.push_str(raw);
        text.push_str(display.unwrap_or_default());
        PackedKey {
            text: text.into_boxed_str(),
            value_len: value.len(),
            raw_len: raw.len(),
            has_display: display.is_some(),
        }
    }

    fn value(&self) -> &str {
        self.text.get(..self.value_len).unwrap_or_default()
    }

    /// Whether this block holds exactly the strings of `identity`.
    fn holds(&self, identity: &Identity) -> bool {
        self.value() == identity.address.value
            && self.raw() == identity.raw_address
            && self.display() == identity.display_name.as_deref()
    }

    fn raw(&self) -> &str {
        self.text.get(self.value_len..self.value_len + self.raw_len).unwrap_or_default()
    }

    fn display(&self) -> Option<&str> {
        self.has_display.then(|| self.text.get(self.value_len + self.raw_len..).unwrap_or_default())
    }
}

impl Borrow<str> for PackedKey {
    fn borrow(&self) -> &str {
        self.value()
    }
}

impl Hash for PackedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value().hash(state);
    }
}

impl PartialEq for PackedKey {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl Eq for PackedKey {}

/// The rest of a stored identity (channel and address kind are where it is filed). The first
/// endpoint is kept inline: most identities only ever use one of our endpoints.
#[derive(Debug)]
struct StoredIdentity {
    id: IdentityId,
    tenant: TenantId,
    customer: CustomerId,
    verification: Verification,
    first_endpoint: Option<EndpointActivity>,
    more_endpoints: Vec<EndpointActivity>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    version: u64,
}

impl StoredIdentity {
    /// The stored form of `identity` (its strings live in its [`PackedKey`]), sharing its endpoint
    /// ids with the other identities of the tenant (`endpoints`): cloning an identity then touches
    /// one hot reference count per endpoint, not a cold one per identity.
    fn new(identity: Identity, endpoints: &mut KeyedSet<EndpointId>) -> StoredIdentity {
        let mut endpoints = identity.endpoints.into_iter().map(|mut e| {
            match endpoints.get(&e.endpoint) {
                Some(shared) => e.endpoint = shared.clone(),
                None => {
                    endpoints.insert(e.endpoint.clone());
                }
            }
            e
        });
        let first_endpoint = endpoints.next();
        StoredIdentity {
            id: identity.id,
            tenant: identity.tenant,
            customer: identity.customer,
            verification: identity.verification,
            first_endpoint,
            more_endpoints: endpoints.collect(),
            first_seen: identity.first_seen,
            last_seen: identity.last_seen,
            version: identity.version,
        }
    }

    fn unpack(&self, channel: &ChannelKind, kind: AddressKind, key: &PackedKey) -> Identity {
        Identity {
            id: self.id,
            tenant: self.tenant.clone(),
            customer: self.customer,
            channel: channel.clone(),
            address: NormalizedAddress { kind, value: key.value().to_owned() },
            raw_address: key.raw().to_owned(),
            verification: self.verification,
            display_name: key.display().map(str::to_owned),
            endpoints: self.first_endpoint.iter().chain(&self.more_endpoints).cloned().collect(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            version: self.version,
        }
    }
}

/// One tenant's records and indexes. Also the snapshot the PostgreSQL store checks a change
/// set against (it loads the records the change set touches into an empty one).
#[derive(Debug, Default)]
pub(crate) struct TenantData {
    customers: IdMap<CustomerId, Customer>,
    external_ids: KeyedMap<String, CustomerId>,
    /// Where each identity is stored: its channel and address.
    identities: IdMap<IdentityId, (ChannelKind, NormalizedAddress)>,
    /// The identities themselves, by channel, address kind and normalised address.
    identity_by_address: KeyedMap<ChannelKind, [KeyedMap<PackedKey, StoredIdentity>; 3]>,
    /// One shared copy of each endpoint id the identities name.
    endpoints: KeyedSet<EndpointId>,
    identities_by_customer: IdMap<CustomerId, Vec<IdentityId>>,
    link_keys: [KeyedMap<String, Vec<IdentityId>>; 3],
    conversations: IdMap<ConversationId, Conversation>,
    conversations_by_customer: IdMap<CustomerId, Vec<ConversationId>>,
    thread_keys: KeyedMap<ThreadKey, ConversationId>,
    thread_keys_by_conversation: IdMap<ConversationId, Vec<ThreadKey>>,
    messages: IdMap<MessageId, Message>,
    messages_by_conversation: IdMap<ConversationId, Vec<MessageId>>,
    message_keys: KeyedMap<ChannelKind, KeyedMap<String, MessageId>>,
    events: Vec<StoredEvent>,
    event_ids: Option<IdGen>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tenant(&self, tenant: &TenantId) -> Option<Arc<RwLock<TenantData>>> {
        read(&self.tenants).get(tenant).cloned()
    }

    fn tenant_or_create(&self, tenant: &TenantId) -> Arc<RwLock<TenantData>> {
        if let Some(t) = self.tenant(tenant) {
            return t;
        }
        write(&self.tenants).entry(tenant.clone()).or_default().clone()
    }

    /// Runs `f` on the tenant's data under its read lock (`empty` if the tenant has none).
    /// The tenant map stays read-locked meanwhile, which only delays creating a new tenant; it
    /// spares the reference-count traffic of cloning the tenant's `Arc` on every read.
    fn with<R>(&self, tenant: &TenantId, empty: R, f: impl FnOnce(&TenantData) -> R) -> R {
        let tenants = read(&self.tenants);
        match tenants.get(tenant) {
            Some(t) => f(&read(t)),
            None => empty,
        }
    }

    /// Everything the store holds, for every tenant, as JSON: for debugging and for tests that
    /// check what is (and is not) stored.
    pub fn dump(&self) -> serde_json::Value {
        let tenants = read(&self.tenants);
        let mut out = serde_json::Map::new();
        for (id, data) in tenants.iter() {
            let d = read(data);
            let thread_keys: Vec<_> = d.thread_keys.iter().collect();
            let message_keys: Vec<_> = d.message_keys.iter().flat_map(|(c, m)| m.keys().map(move |k| (c, k))).collect();
            let link_keys: Vec<_> = d.link_keys.iter().flat_map(|m| m.keys()).collect();
            let addresses: Vec<_> = d
                .identity_by_address
                .values()
                .flat_map(|a| a.iter().flat_map(|m| m.keys().map(PackedKey::value)))
                .collect();
            out.insert(
                id.to_string(),
                serde_json::json!({
                    "customers": d.customers.values().collect::<Vec<_>>(),
                    "external_ids": d.external_ids,
                    "identities": d.identities.keys().filter_map(|id| d.identity(*id)).collect::<Vec<_>>(),
                    "identity_addresses": addresses,
                    "link_keys": link_keys,
                    "conversations": d.conversations.values().collect::<Vec<_>>(),
                    "thread_keys": thread_keys,
                    "messages": d.messages.values().collect::<Vec<_>>(),
                    "message_keys": message_keys,
                    "events": d.events,
                }),
            );
        }
        serde_json::Value::Object(out)
    }
}

impl TenantData {
    fn identities_of(&self, customer: CustomerId) -> Vec<Identity> {
        self.identities_by_customer.get(&customer).into_iter().flatten().filter_map(|id| self.identity(*id)).collect()
    }

    /// A customer's conversations, most recently active first.
    fn conversations_of(&self, customer: CustomerId) -> Vec<Conversation> {
        let mut v: Vec<Conversation> = self
            .conversations_by_customer
            .get(&customer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.conversations.get(id).cloned())
            .collect();
        v.sort_by(|a, b| b.last_activity_at.cmp(&a.last_activity_at).then(b.id.cmp(&a.id)));
        v
    }

    /// A page of messages, newest first.
    fn messages(&self, query: &MessageQuery) -> Vec<Message> {
        let one;
        let conversations: &[ConversationId] = match query.scope {
            MessageScope::Conversation(c) => {
                one = [c];
                &one
            }
            MessageScope::Customer(c) => self.conversations_by_customer.get(&c).map_or(&[], Vec::as_slice),
        };
        // Each conversation's ids below the cursor; merge them from the newest end.
        let mut slices: Vec<&[MessageId]> = conversations
            .iter()
            .filter_map(|c| self.messages_by_conversation.get(c))
            .map(|ids| match query.before {
                Some(b) => &ids[..ids.partition_point(|m| *m < b)],
                None => &ids[..],
            })
            .filter(|s| !s.is_empty())
            .collect();
        let mut out = Vec::with_capacity(query.limit.min(1024));
        while out.len() < query.limit {
            // The slice whose last (newest) id is the greatest.
            let mut best: Option<(usize, MessageId)> = None;
            for (i, s) in slices.iter().enumerate() {
                if let Some(&m) = s.last()
                    && best.is_none_or(|(_, b)| m > b)
                {
                    best = Some((i, m));
                }
            }
            let Some((i, newest)) = best else { break };
            if let Some(s) = slices.get_mut(i)
                && let Some((_, rest)) = s.split_last()
            {
                *s = rest;
            }
            if let Some(m) = self.messages.get(&newest) {
                out.push(m.clone());
            }
        }
        out
    }
    /// The stored identity with `(channel, kind, value)`.
    fn stored_at(
        &self,
        channel: &ChannelKind,
        kind: AddressKind,
        value: &str,
    ) -> Option<(&PackedKey, &StoredIdentity)> {
        self.identity_by_address.get(channel)?[kind_index(kind)].get_key_value(value)
    }

    /// The stored identity `id`, with its channel and address kind.
    fn stored(&self, id: IdentityId) -> Option<(&ChannelKind, AddressKind, &PackedKey, &StoredIdentity)> {
        let (channel, address) = self.identities.get(&id)?;
        let (key, stored) = self.stored_at(channel, address.kind, &address.value)?;
        Some((channel, address.kind, key, stored))
    }

    /// The identity `id`, as a record.
    fn identity(&self, id: IdentityId) -> Option<Identity> {
        self.stored(id).map(|(channel, kind, key, stored)| stored.unpack(channel, kind, key))
    }

    fn identity_id_by_address(&self, channel: &ChannelKind, address: &NormalizedAddress) -> Option<IdentityId> {
        self.stored_at(channel, address.kind, &address.value).map(|(_, s)| s.id)
    }

    fn remove_identity(&mut self, id: IdentityId) {
        let Some((channel, address)) = self.identities.remove(&id) else { return };
        let removed = self
            .identity_by_address
            .get_mut(&channel)
            .and_then(|m| m[kind_index(address.kind)].remove(address.value.as_str()));
        if let Some(old) = removed
            && let Some(v) = self.identities_by_customer.get_mut(&old.customer)
        {
            v.retain(|i| *i != id);
        }
        if LinkKey::of(&address).is_some() {
            let map = &mut self.link_keys[kind_index(address.kind)];
            if let Some(v) = map.get_mut(&address.value) {
                v.retain(|i| *i != id);
                if v.is_empty() {
                    map.remove(&address.value);
                }
            }
        }
    }

    pub(crate) fn put_identity(&mut self, identity: Identity) {
        let id = identity.id;
        let kind = kind_index(identity.address.kind);
        // (owner, whether its strings are unchanged) of the identity as stored at this address.
        let stored = self
            .stored_at(&identity.channel, identity.address.kind, &identity.address.value)
            .filter(|(_, stored)| stored.id == id)
            .map(|(key, stored)| (stored.customer, key.holds(&identity)));
        match stored {
            Some((old, unchanged)) => {
                if old != identity.customer {
                    if let Some(v) = self.identities_by_customer.get_mut(&old) {
                        v.retain(|i| *i != id);
                    }
                    self.identities_by_customer.entry(identity.customer).or_default().push(id);
                }
                if unchanged {
                    // The usual update (versions, timestamps, endpoints): rewritten in place.
                    let slot = self
                        .identity_by_address
                        .get_mut(&identity.channel)
                        .and_then(|m| m[kind].get_mut(identity.address.value.as_str()));
                    if let Some(slot) = slot {
                        *slot = StoredIdentity::new(identity, &mut self.endpoints);
                    }
                    return;
                }
                if let Some(m) = self.identity_by_address.get_mut(&identity.channel) {
                    m[kind].remove(identity.address.value.as_str());
                }
            }
            None => {
                if self.identities.contains_key(&id) {
                    // Addresses never change (the contract checks refuse it); refile if one did.
                    self.remove_identity(id);
                }
                self.identities.insert(id, (identity.channel.clone(), identity.address.clone()));
                self.identities_by_customer.entry(identity.customer).or_default().push(id);
                if LinkKey::of(&identity.address).is_some() {
                    self.link_keys[kind].entry(identity.address.value.clone()).or_default().push(id);
                }
            }
        }
        let key = PackedKey::new(&identity);
        let channel = identity.channel.clone();
        let stored = StoredIdentity::new(identity, &mut self.endpoints);
        self.identity_by_address.entry(channel).or_default()[kind].insert(key, stored);
    }

    pub(crate) fn put_customer(&mut self, customer: Customer) {
        if let Some(old) = self.customers.get(&customer.id)
            && let Some(x) = &old.external_id
            && customer.external_id.as_ref() != Some(x)
            && self.external_ids.get(x) == Some(&customer.id)
        {
            self.external_ids.remove(x);
        }
        if let Some(x) = &customer.external_id {
            self.external_ids.insert(x.clone(), customer.id);
        }
        self.customers.insert(customer.id, customer);
    }

    pub(crate) fn put_conversation(&mut self, conversation: Conversation) {
        let id = conversation.id;
        match self.conversations.get(&id) {
            Some(old) if old.customer != conversation.customer => {
                let old_customer = old.customer;
                if let Some(v) = self.conversations_by_customer.get_mut(&old_customer) {
                    v.retain(|c| *c != id);
                }
                self.conversations_by_customer.entry(conversation.customer).or_default().push(id);
            }
            Some(_) => {}
            None => self.conversations_by_customer.entry(conversation.customer).or_default().push(id),
        }
        self.conversations.insert(id, conversation);
    }

    pub(crate) fn put_message(&mut self, message: Message) {
        let id = message.id;
        let old = self.messages.get(&id);
        let old_key = old.and_then(|m| Some((m.channel.clone(), m.external_id.clone()?)));
        let old_conversation = old.map(|m| m.conversation);
        if old_conversation != Some(message.conversation) {
            if let Some(c) = old_conversation
                && let Some(list) = self.messages_by_conversation.get_mut(&c)
            {
                list.retain(|m| *m != id);
            }
            let list = self.messages_by_conversation.entry(message.conversation).or_default();
            let at = list.partition_point(|m| *m < id);
            list.insert(at, id);
        }
        let new_key = message.external_id.as_ref().map(|x| (message.channel.clone(), x.clone()));
        if old_key != new_key {
            if let Some((channel, x)) = old_key
                && let Some(keys) = self.message_keys.get_mut(&channel)
            {
                keys.remove(&x);
            }
            if let Some((channel, x)) = new_key {
                self.message_keys.entry(channel).or_default().insert(x, id);
            }
        }
        self.messages.insert(id, message);
    }

    fn delete_conversation(&mut self, id: ConversationId) {
        if let Some(c) = self.conversations.remove(&id)
            && let Some(v) = self.conversations_by_customer.get_mut(&c.customer)
        {
            v.retain(|x| *x != id);
        }
        for key in self.thread_keys_by_conversation.remove(&id).unwrap_or_default() {
            self.thread_keys.remove(&key);
        }
        for mid in self.messages_by_conversation.remove(&id).unwrap_or_default() {
            if let Some(m) = self.messages.remove(&mid)
                && let (Some(x), Some(keys)) = (&m.external_id, self.message_keys.get_mut(&m.channel))
            {
                keys.remove(x);
            }
        }
    }

    fn apply(&mut self, tenant: &TenantId, changes: ChangeSet) -> u64 {
        for id in &changes.conversation_deletes {
            self.delete_conversation(*id);
        }
        for (id, _) in &changes.identity_deletes {
            self.remove_identity(*id);
        }
        for w in changes.customers {
            self.put_customer(w.record);
        }
        for w in changes.identities {
            self.put_identity(w.record);
        }
        for w in changes.conversations {
            self.put_conversation(w.record);
        }
        for w in changes.messages {
            self.put_message(w.record);
        }
        for claim in changes.thread_keys {
            let ThreadKeyClaim { key, conversation, replaces } = claim;
            if !self.conversations.contains_key(&conversation) {
                continue;
            }
            match self.thread_keys.get(&key).copied() {
                None => {}
                Some(holder) if Some(holder) == replaces && holder != conversation => {
                    if let Some(v) = self.thread_keys_by_conversation.get_mut(&holder) {
                        v.retain(|k| *k != key);
                    }
                }
                Some(_) => continue,
            }
            self.thread_keys_by_conversation.entry(conversation).or_default().push(key.clone());
            self.thread_keys.insert(key, conversation);
        }
        let first = self.events.len() as u64 + 1;
        for event in changes.events {
            let seq = self.events.len() as u64 + 1;
            self.events.push(StoredEvent {
                seq,
                id: EventId(self.event_ids.get_or_insert_with(IdGen::new).next(changes.at)),
                tenant: tenant.clone(),
                at: changes.at,
                event,
            });
        }
        if self.events.len() as u64 >= first { first } else { 0 }
    }
}

impl Lookup for TenantData {
    fn customer(&self, id: CustomerId) -> crate::Result<Option<(u64, Standing)>> {
        Ok(self.customers.get(&id).map(|c| (c.version, Standing::of(&c.state))))
    }

    fn customer_by_external_id(&self, external_id: &str) -> crate::Result<Option<CustomerId>> {
        Ok(self.external_ids.get(external_id).copied())
    }

    fn identity(
        &self,
        id: IdentityId,
        at: Option<(&ChannelKind, &NormalizedAddress)>,
    ) -> crate::Result<Option<(u64, bool)>> {
        // Usually asked with the address the identity is filed under: one probe.
        if let Some((channel, address)) = at
            && let Some((_, s)) = self.stored_at(channel, address.kind, &address.value)
            && s.id == id
        {
            return Ok(Some((s.version, true)));
        }
        Ok(self.stored(id).map(|(c, kind, key, s)| {
            let same = at
                .is_none_or(|(channel, address)| c == channel && kind == address.kind && key.value() == address.value);
            (s.version, same)
        }))
    }

    fn identity_by_address(
        &self,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> crate::Result<Option<IdentityId>> {
        Ok(self.identity_id_by_address(channel, address))
    }

    fn link_holders(&self, address: &NormalizedAddress) -> crate::Result<Vec<(IdentityId, CustomerId, Verification)>> {
        Ok(self.link_keys[kind_index(address.kind)]
            .get(&address.value)
            .into_iter()
            .flatten()
            .filter_map(|id| self.stored(*id))
            .map(|(.., i)| (i.id, i.customer, i.verification))
            .collect())
    }

    fn conversation(&self, id: ConversationId) -> crate::Result<Option<(u64, CustomerId)>> {
        Ok(self.conversations.get(&id).map(|c| (c.version, c.customer)))
    }

    fn message_version(&self, id: MessageId) -> crate::Result<Option<u64>> {
        Ok(self.messages.get(&id).map(|m| m.version))
    }

    fn message_by_key(&self, channel: &ChannelKind, external_id: &str) -> crate::Result<Option<MessageId>> {
        Ok(self.message_keys.get(channel).and_then(|m| m.get(external_id)).copied())
    }
}

#[async_trait]
impl Store for InMemoryStore {
    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> crate::Result<Option<Customer>> {
        Ok(self.with(tenant, None, |d| d.customers.get(&id).cloned()))
    }

    async fn customer_by_external_id(&self, tenant: &TenantId, external_id: &str) -> crate::Result<Option<Customer>> {
        Ok(self.with(tenant, None, |d| d.external_ids.get(external_id).and_then(|id| d.customers.get(id)).cloned()))
    }

    async fn identity(&self, tenant: &TenantId, id: IdentityId) -> crate::Result<Option<Identity>> {
        Ok(self.with(tenant, None, |d| d.identity(id)))
    }

    async fn identity_by_address(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> crate::Result<Option<Identity>> {
        Ok(self.with(tenant, None, |d| {
            d.stored_at(channel, address.kind, &address.value)
                .map(|(key, stored)| stored.unpack(channel, address.kind, key))
        }))
    }

    async fn identities_of(&self, tenant: &TenantId, customer: CustomerId) -> crate::Result<Vec<Identity>> {
        Ok(self.with(tenant, Vec::new(), |d| d.identities_of(customer)))
    }

    async fn customers_by_address(
        &self,
        tenant: &TenantId,
        key: &LinkKey,
    ) -> crate::Result<Vec<(CustomerId, Verification)>> {
        Ok(self.with(tenant, Vec::new(), |d| {
            let mut out: Vec<(CustomerId, Verification)> = Vec::new();
            for id in d.link_keys[kind_index(key.0.kind)].get(&key.0.value).into_iter().flatten() {
                if let Some((.., i)) = d.stored(*id) {
                    match out.iter_mut().find(|(c, _)| *c == i.customer) {
                        Some((_, v)) => *v = (*v).max(i.verification),
                        None => out.push((i.customer, i.verification)),
                    }
                }
            }
            out
        }))
    }

    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> crate::Result<Option<Conversation>> {
        Ok(self.with(tenant, None, |d| d.conversations.get(&id).cloned()))
    }

    async fn conversation_by_thread_key(
        &self,
        tenant: &TenantId,
        key: &ThreadKey,
    ) -> crate::Result<Option<ConversationId>> {
        Ok(self.with(tenant, None, |d| d.thread_keys.get(key).copied()))
    }

    async fn conversations_of(&self, tenant: &TenantId, customer: CustomerId) -> crate::Result<Vec<Conversation>> {
        Ok(self.with(tenant, Vec::new(), |d| d.conversations_of(customer)))
    }

    async fn message(&self, tenant: &TenantId, id: MessageId) -> crate::Result<Option<Message>> {
        Ok(self.with(tenant, None, |d| d.messages.get(&id).cloned()))
    }

    async fn message_by_external_id(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        external_id: &str,
    ) -> crate::Result<Option<Message>> {
        Ok(self.with(tenant, None, |d| {
            d.message_keys.get(channel).and_then(|m| m.get(external_id)).and_then(|id| d.messages.get(id)).cloned()
        }))
    }

    async fn messages(&self, tenant: &TenantId, query: &MessageQuery) -> crate::Result<Vec<Message>> {
        Ok(self.with(tenant, Vec::new(), |d| d.messages(query)))
    }

    /// One read under the tenant's lock: a snapshot by construction.
    async fn customer_snapshot(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> crate::Result<Option<CustomerSnapshot>> {
        Ok(self.with(tenant, None, |d| {
            let record = d.customers.get(&customer)?.clone();
            let query = MessageQuery { scope: MessageScope::Customer(customer), before: None, limit: usize::MAX };
            let mut messages = d.messages(&query);
            messages.reverse();
            Some(CustomerSnapshot {
                customer: record,
                identities: d.identities_of(customer),
                conversations: d.conversations_of(customer),
                messages,
            })
        }))
    }

    async fn commit(&self, tenant: &TenantId, changes: ChangeSet) -> crate::Result<Committed> {
        let data = self.tenant_or_create(tenant);
        let mut d = write(&data);
        if let Some(key) = &changes.dedupe
            && let Some(existing) = d.message_keys.get(&key.channel).and_then(|m| m.get(&key.external_id))
        {
            return Ok(Committed::Duplicate { message: *existing });
        }
        check(&*d, tenant, &changes)?;
        let first_event_seq = d.apply(tenant, changes);
        Ok(Committed::Applied { first_event_seq })
    }

    async fn events_after(&self, tenant: &TenantId, after: u64, limit: usize) -> crate::Result<Vec<StoredEvent>> {
        Ok(self.with(tenant, Vec::new(), |d| {
            let start = usize::try_from(after).unwrap_or(usize::MAX).min(d.events.len());
            d.events[start..].iter().take(limit).cloned().collect()
        }))
    }
}
