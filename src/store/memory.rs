//! The in-memory store: always compiled, the same semantics as a database backend.

use super::{ChangeSet, Committed, LinkKey, MessageQuery, MessageScope, Store, ThreadKey, ThreadKeyClaim};
use crate::Error;
use crate::events::StoredEvent;
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, CustomerState, EventId, Identity,
    IdentityId, Message, MessageId, NormalizedAddress, TenantId, Verification,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A [`Store`] that keeps everything in memory, for tests and single-process hosts.
///
/// Cloning gives another handle to the same data. Each tenant's data sits behind its own lock,
/// so tenants never contend with each other.
#[derive(Debug, Default, Clone)]
pub struct InMemoryStore {
    tenants: Arc<RwLock<HashMap<TenantId, Arc<RwLock<TenantData>>>>>,
}

fn kind_index(kind: AddressKind) -> usize {
    match kind {
        AddressKind::Phone => 0,
        AddressKind::Email => 1,
        AddressKind::Platform => 2,
    }
}

#[derive(Debug, Default)]
struct TenantData {
    customers: HashMap<CustomerId, Customer>,
    external_ids: HashMap<String, CustomerId>,
    identities: HashMap<IdentityId, Identity>,
    identity_by_address: HashMap<ChannelKind, [HashMap<String, IdentityId>; 3]>,
    identities_by_customer: HashMap<CustomerId, Vec<IdentityId>>,
    link_keys: [HashMap<String, Vec<IdentityId>>; 3],
    conversations: HashMap<ConversationId, Conversation>,
    conversations_by_customer: HashMap<CustomerId, Vec<ConversationId>>,
    thread_keys: HashMap<ThreadKey, ConversationId>,
    thread_keys_by_conversation: HashMap<ConversationId, Vec<ThreadKey>>,
    messages: HashMap<MessageId, Message>,
    messages_by_conversation: HashMap<ConversationId, Vec<MessageId>>,
    message_keys: HashMap<ChannelKind, HashMap<String, MessageId>>,
    events: Vec<StoredEvent>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn conflict(what: String) -> Error {
    Error::Conflict(what)
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

    fn with<R>(&self, tenant: &TenantId, empty: R, f: impl FnOnce(&TenantData) -> R) -> R {
        match self.tenant(tenant) {
            Some(t) => f(&read(&t)),
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
            let addresses: Vec<_> =
                d.identity_by_address.values().flat_map(|a| a.iter().flat_map(|m| m.keys())).collect();
            out.insert(
                id.to_string(),
                serde_json::json!({
                    "customers": d.customers.values().collect::<Vec<_>>(),
                    "external_ids": d.external_ids,
                    "identities": d.identities.values().collect::<Vec<_>>(),
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
    fn identity_id_by_address(&self, channel: &ChannelKind, address: &NormalizedAddress) -> Option<IdentityId> {
        self.identity_by_address.get(channel)?[kind_index(address.kind)].get(&address.value).copied()
    }

    fn validate(&self, changes: &ChangeSet) -> crate::Result<()> {
        // Customers: versions and the external-id unique key, judged on the state after the commit.
        let mut final_external: HashMap<CustomerId, Option<&str>> = HashMap::new();
        for w in &changes.customers {
            let id = w.record.id;
            check_version("customer", id, self.customers.get(&id).map(|c| c.version), w.expected)?;
            final_external.insert(id, w.record.external_id.as_deref());
        }
        for w in &changes.customers {
            if let Some(x) = w.record.external_id.as_deref() {
                if let Some(holder) = self.external_ids.get(x) {
                    let still_holds =
                        *holder != w.record.id && final_external.get(holder).is_none_or(|e| *e == Some(x));
                    if still_holds {
                        return Err(conflict(format!("external id is already held by customer {holder}")));
                    }
                }
                if changes
                    .customers
                    .iter()
                    .any(|o| o.record.id != w.record.id && o.record.external_id.as_deref() == Some(x))
                {
                    return Err(conflict("two customers in one change claim the same external id".into()));
                }
            }
        }
        // Identities: versions, immutable address, the (channel, address) unique key, link keys.
        for (id, expected) in &changes.identity_deletes {
            check_version("identity", *id, self.identities.get(id).map(|i| i.version), Some(*expected))?;
        }
        for w in &changes.identities {
            let r = &w.record;
            let stored = self.identities.get(&r.id);
            check_version("identity", r.id, stored.map(|i| i.version), w.expected)?;
            if let Some(s) = stored {
                if s.channel != r.channel || s.address != r.address {
                    return Err(Error::invalid("identity.address", "an identity's channel and address never change"));
                }
            } else if let Some(holder) = self.identity_id_by_address(&r.channel, &r.address)
                && !changes.identity_deletes.iter().any(|(d, _)| *d == holder)
            {
                return Err(conflict(format!("{} address is already identity {holder}", r.channel)));
            }
            if changes
                .identities
                .iter()
                .filter(|o| o.record.channel == r.channel && o.record.address == r.address)
                .count()
                > 1
            {
                return Err(conflict("two identities in one change share an address".into()));
            }
            if r.verification.can_link() && LinkKey::of(&r.address).is_some() {
                self.check_link_key(changes, &r.address)?;
            }
        }
        self.check_owners_active(changes)?;
        // Conversations and messages.
        for w in &changes.conversations {
            check_version(
                "conversation",
                w.record.id,
                self.conversations.get(&w.record.id).map(|c| c.version),
                w.expected,
            )?;
        }
        for w in &changes.messages {
            let r = &w.record;
            check_version("message", r.id, self.messages.get(&r.id).map(|m| m.version), w.expected)?;
            if w.expected.is_none()
                && let Some(x) = &r.external_id
            {
                let taken = self.message_keys.get(&r.channel).is_some_and(|m| m.contains_key(x));
                let twice = changes
                    .messages
                    .iter()
                    .filter(|o| {
                        o.expected.is_none()
                            && o.record.channel == r.channel
                            && o.record.external_id.as_ref() == Some(x)
                    })
                    .count()
                    > 1;
                if taken || twice {
                    return Err(conflict(format!("a {} message with provider id {x:?} already exists", r.channel)));
                }
            }
        }
        Ok(())
    }

    /// Identities, conversations and messages written by the change must belong to a customer
    /// that is active after the commit.
    fn check_owners_active(&self, changes: &ChangeSet) -> crate::Result<()> {
        let active = |id: CustomerId| -> crate::Result<()> {
            let state = match changes.customers.iter().find(|w| w.record.id == id) {
                Some(w) => Some(&w.record.state),
                None => self.customers.get(&id).map(|c| &c.state),
            };
            match state {
                Some(CustomerState::Active) => Ok(()),
                Some(CustomerState::Merged { .. }) => Err(conflict(format!("customer {id} was merged"))),
                Some(CustomerState::Erased { .. }) => Err(conflict(format!("customer {id} was erased"))),
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
                None => self.conversations.get(&conversation).map(|c| c.customer),
            };
            match owner {
                Some(customer) => active(customer)?,
                None => return Err(conflict(format!("conversation {conversation} does not exist"))),
            }
        }
        Ok(())
    }

    /// A linking-level address may belong to one customer only (after the commit).
    fn check_link_key(&self, changes: &ChangeSet, address: &NormalizedAddress) -> crate::Result<()> {
        let written = changes.identities.iter().map(|w| &w.record).filter(|i| &i.address == address);
        let stored = self.link_keys[kind_index(address.kind)]
            .get(&address.value)
            .into_iter()
            .flatten()
            .filter(|id| {
                !changes.identity_deletes.iter().any(|(d, _)| d == *id)
                    && !changes.identities.iter().any(|w| w.record.id == **id)
            })
            .filter_map(|id| self.identities.get(id));
        let mut owner = None;
        for identity in written.chain(stored).filter(|i| i.verification.can_link()) {
            match owner {
                None => owner = Some(identity.customer),
                Some(o) if o != identity.customer => {
                    return Err(conflict(format!("{} is already a verified address of customer {o}", address.value)));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn remove_identity(&mut self, id: IdentityId) {
        if let Some(old) = self.identities.remove(&id) {
            if let Some(m) = self.identity_by_address.get_mut(&old.channel) {
                m[kind_index(old.address.kind)].remove(&old.address.value);
            }
            if let Some(v) = self.identities_by_customer.get_mut(&old.customer) {
                v.retain(|i| *i != id);
            }
            if LinkKey::of(&old.address).is_some() {
                let map = &mut self.link_keys[kind_index(old.address.kind)];
                if let Some(v) = map.get_mut(&old.address.value) {
                    v.retain(|i| *i != id);
                    if v.is_empty() {
                        map.remove(&old.address.value);
                    }
                }
            }
        }
    }

    fn put_identity(&mut self, identity: Identity) {
        let id = identity.id;
        match self.identities.get(&id) {
            Some(old) if old.customer != identity.customer => {
                let old_customer = old.customer;
                if let Some(v) = self.identities_by_customer.get_mut(&old_customer) {
                    v.retain(|i| *i != id);
                }
                self.identities_by_customer.entry(identity.customer).or_default().push(id);
            }
            Some(_) => {}
            None => {
                self.identity_by_address.entry(identity.channel.clone()).or_default()
                    [kind_index(identity.address.kind)]
                .insert(identity.address.value.clone(), id);
                self.identities_by_customer.entry(identity.customer).or_default().push(id);
                if LinkKey::of(&identity.address).is_some() {
                    self.link_keys[kind_index(identity.address.kind)]
                        .entry(identity.address.value.clone())
                        .or_default()
                        .push(id);
                }
            }
        }
        self.identities.insert(id, identity);
    }

    fn put_customer(&mut self, customer: Customer) {
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

    fn put_conversation(&mut self, conversation: Conversation) {
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

    fn put_message(&mut self, message: Message) {
        let id = message.id;
        if !self.messages.contains_key(&id) {
            let list = self.messages_by_conversation.entry(message.conversation).or_default();
            let at = list.partition_point(|m| *m < id);
            list.insert(at, id);
            if let Some(x) = &message.external_id {
                self.message_keys.entry(message.channel.clone()).or_default().insert(x.clone(), id);
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
                id: EventId(uuid::Uuid::now_v7()),
                tenant: tenant.clone(),
                at: changes.at,
                event,
            });
        }
        if self.events.len() as u64 >= first { first } else { 0 }
    }
}

fn check_version(
    entity: &'static str,
    id: impl std::fmt::Display,
    stored: Option<u64>,
    expected: Option<u64>,
) -> crate::Result<()> {
    match (stored, expected) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(conflict(format!("{entity} {id} already exists"))),
        (None, Some(_)) => Err(conflict(format!("{entity} {id} no longer exists"))),
        (Some(s), Some(e)) if s == e => Ok(()),
        (Some(s), Some(e)) => Err(conflict(format!("{entity} {id} is at version {s}, expected {e}"))),
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
        Ok(self.with(tenant, None, |d| d.identities.get(&id).cloned()))
    }

    async fn identity_by_address(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> crate::Result<Option<Identity>> {
        Ok(self.with(tenant, None, |d| {
            d.identity_id_by_address(channel, address).and_then(|id| d.identities.get(&id)).cloned()
        }))
    }

    async fn identities_of(&self, tenant: &TenantId, customer: CustomerId) -> crate::Result<Vec<Identity>> {
        Ok(self.with(tenant, Vec::new(), |d| {
            d.identities_by_customer
                .get(&customer)
                .into_iter()
                .flatten()
                .filter_map(|id| d.identities.get(id).cloned())
                .collect()
        }))
    }

    async fn customers_by_address(
        &self,
        tenant: &TenantId,
        key: &LinkKey,
    ) -> crate::Result<Vec<(CustomerId, Verification)>> {
        Ok(self.with(tenant, Vec::new(), |d| {
            let mut out: Vec<(CustomerId, Verification)> = Vec::new();
            for id in d.link_keys[kind_index(key.0.kind)].get(&key.0.value).into_iter().flatten() {
                if let Some(i) = d.identities.get(id) {
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
        Ok(self.with(tenant, Vec::new(), |d| {
            let mut v: Vec<Conversation> = d
                .conversations_by_customer
                .get(&customer)
                .into_iter()
                .flatten()
                .filter_map(|id| d.conversations.get(id).cloned())
                .collect();
            v.sort_by(|a, b| b.last_activity_at.cmp(&a.last_activity_at).then(b.id.cmp(&a.id)));
            v
        }))
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
        Ok(self.with(tenant, Vec::new(), |d| {
            let conversations: Vec<ConversationId> = match query.scope {
                MessageScope::Conversation(c) => vec![c],
                MessageScope::Customer(c) => d.conversations_by_customer.get(&c).cloned().unwrap_or_default(),
            };
            // Each conversation's ids below the cursor; merge them from the newest end.
            let mut slices: Vec<&[MessageId]> = conversations
                .iter()
                .filter_map(|c| d.messages_by_conversation.get(c))
                .map(|ids| match query.before {
                    Some(b) => &ids[..ids.partition_point(|m| *m < b)],
                    None => &ids[..],
                })
                .collect();
            let mut out = Vec::with_capacity(query.limit.min(1024));
            while out.len() < query.limit {
                let Some((i, _)) =
                    slices.iter().enumerate().filter_map(|(i, s)| s.last().map(|m| (i, m))).max_by_key(|(_, m)| **m)
                else {
                    break;
                };
                let s = slices[i];
                let (last, rest) = s.split_last().expect("non-empty slice chosen above");
                slices[i] = rest;
                if let Some(m) = d.messages.get(last) {
                    out.push(m.clone());
                }
            }
            out
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
        check_tenant(tenant, &changes)?;
        d.validate(&changes)?;
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

/// Every record in a change set must belong to the tenant it is committed to.
pub(crate) fn check_tenant(tenant: &TenantId, changes: &ChangeSet) -> crate::Result<()> {
    let foreign = changes.customers.iter().any(|w| &w.record.tenant != tenant)
        || changes.identities.iter().any(|w| &w.record.tenant != tenant)
        || changes.conversations.iter().any(|w| &w.record.tenant != tenant)
        || changes.messages.iter().any(|w| &w.record.tenant != tenant);
    if foreign { Err(Error::WrongTenant(tenant.clone())) } else { Ok(()) }
}
