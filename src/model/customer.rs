//! The customer (the person) and their identities (one address on one channel each).

use super::{
    ChannelKind, CustomerId, EndpointId, IdentityId, LanguageTag, NormalizedAddress, TenantId, TimeZoneName,
    Verification,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Free-form attributes the host keeps on a customer (plan, account number, …).
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// The person we serve, across every channel they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Id of this customer.
    pub id: CustomerId,
    /// The tenant the customer belongs to.
    pub tenant: TenantId,
    /// The host's own id for this person (the strongest identity key; unique per tenant).
    pub external_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Preferred language.
    pub language: Option<LanguageTag>,
    /// Home time zone.
    pub time_zone: Option<TimeZoneName>,
    /// Host-defined attributes.
    pub attributes: Attributes,
    /// Per-channel consent to be contacted.
    pub consent: BTreeMap<ChannelKind, Consent>,
    /// Whether the customer is blocked (their new conversations start resolved and are not routed).
    pub blocked: bool,
    /// Active, merged into another customer, or erased.
    pub state: CustomerState,
    /// The customers merged into this one, in merge order: their records are aliases that
    /// resolve to this customer ([`CustomerState::Merged`]), so ids the host kept of them still
    /// find this person, and an export names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<CustomerId>,
    /// Customers this one resembles on a key that was not trusted enough to link them (an
    /// unverified email or phone another customer holds), in the order the suspicions were
    /// raised. Each was announced once ([`Event::DuplicateSuspected`](crate::events::Event)). A
    /// merge of the two settles theirs (the survivor keeps the absorbed customer's others); an
    /// erased customer's tombstone keeps none. Other customers' lists are not rewritten: an id
    /// here can name a customer since merged away or erased.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspected_duplicates: Vec<CustomerId>,
    /// When the customer was created.
    pub created_at: DateTime<Utc>,
    /// Last change to the record.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: u64,
}

/// Lifecycle of a customer record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CustomerState {
    /// A live customer.
    Active,
    /// Absorbed by a merge: an alias that points at the survivor.
    Merged {
        /// The customer that absorbed this one.
        into: CustomerId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Erased on request: a tombstone without personal data.
    Erased {
        /// When.
        at: DateTime<Utc>,
    },
}

impl Customer {
    /// A new, empty, active customer.
    pub fn new(id: CustomerId, tenant: TenantId, now: DateTime<Utc>) -> Self {
        Customer {
            id,
            tenant,
            external_id: None,
            name: None,
            language: None,
            time_zone: None,
            attributes: Attributes::new(),
            consent: BTreeMap::new(),
            blocked: false,
            state: CustomerState::Active,
            merged_from: Vec::new(),
            suspected_duplicates: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether the record is a live customer (not merged away, not erased).
    pub fn is_active(&self) -> bool {
        self.state == CustomerState::Active
    }

    /// Whether the customer may be contacted on `channel`: not blocked, and not opted out there.
    pub fn may_contact(&self, channel: &ChannelKind) -> bool {
        !self.blocked && !matches!(self.consent.get(channel), Some(c) if c.state == ConsentState::OptedOut)
    }
}

/// A customer's consent to be contacted on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Opted in or out.
    pub state: ConsentState,
    /// When the customer said so.
    pub at: DateTime<Utc>,
    /// Where it was recorded (keyword `STOP`, web form, agent…), if known.
    pub source: Option<String>,
}

/// Whether the customer agreed to be contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// The customer agreed.
    OptedIn,
    /// The customer withdrew (for example by texting STOP).
    OptedOut,
}

/// One address of a customer on one channel: a WhatsApp number, an email address, a Messenger
/// page-scoped id. Unique per (tenant, channel, normalised address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Id of this identity.
    pub id: IdentityId,
    /// The tenant.
    pub tenant: TenantId,
    /// The customer this address belongs to.
    pub customer: CustomerId,
    /// The channel.
    pub channel: ChannelKind,
    /// The normalised address (the lookup key).
    pub address: NormalizedAddress,
    /// The address exactly as the channel first reported it.
    pub raw_address: String,
    /// How far the address is trusted.
    pub verification: Verification,
    /// Name the channel reported for the sender, if any (the first one reported; when a
    /// sign-in moves the identity to another person, that person's).
    pub display_name: Option<String>,
    /// Activity per endpoint of ours (drives reply windows).
    pub endpoints: Vec<EndpointActivity>,
    /// First contact through this identity.
    pub first_seen: DateTime<Utc>,
    /// Latest contact through this identity.
    pub last_seen: DateTime<Utc>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Identity {
    /// A new identity of `customer`, first and last seen `now`, without endpoint activity.
    pub fn new(
        id: IdentityId,
        customer: &Customer,
        channel: ChannelKind,
        address: NormalizedAddress,
        raw_address: String,
        verification: Verification,
        now: DateTime<Utc>,
    ) -> Self {
        Identity {
            id,
            tenant: customer.tenant.clone(),
            customer: customer.id,
            channel,
            address,
            raw_address,
            verification,
            display_name: None,
            endpoints: Vec::new(),
            first_seen: now,
            last_seen: now,
            version: 0,
        }
    }

    /// The activity record for `endpoint`, if the customer ever used it.
    pub fn endpoint(&self, endpoint: &EndpointId) -> Option<&EndpointActivity> {
        self.endpoints.iter().find(|e| &e.endpoint == endpoint)
    }

    /// Records an inbound contact on `endpoint` at `at`.
    pub fn touch_inbound(&mut self, endpoint: &EndpointId, at: DateTime<Utc>) {
        self.last_seen = self.last_seen.max(at);
        match self.endpoints.iter_mut().find(|e| &e.endpoint == endpoint) {
            Some(e) => e.last_inbound_at = Some(e.last_inbound_at.map_or(at, |t| t.max(at))),
            None => self.endpoints.push(EndpointActivity {
                endpoint: endpoint.clone(),
                last_inbound_at: Some(at),
                last_outbound_at: None,
            }),
        }
    }

    /// Records an outbound message on `endpoint` at `at`.
    pub fn touch_outbound(&mut self, endpoint: &EndpointId, at: DateTime<Utc>) {
        match self.endpoints.iter_mut().find(|e| &e.endpoint == endpoint) {
            Some(e) => e.last_outbound_at = Some(e.last_outbound_at.map_or(at, |t| t.max(at))),
            None => self.endpoints.push(EndpointActivity {
                endpoint: endpoint.clone(),
                last_inbound_at: None,
                last_outbound_at: Some(at),
            }),
        }
    }
}

/// When a customer last wrote to (and was last written from) one of our endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointActivity {
    /// Our endpoint.
    pub endpoint: EndpointId,
    /// The customer's latest inbound message there (opens reply windows).
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Our latest outbound message there.
    pub last_outbound_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records stored before a customer kept its suspicions read back with none, and a list
    /// round-trips through the stored JSON.
    #[test]
    fn suspected_duplicates_are_optional_in_stored_records() {
        let tenant = TenantId::new("t").expect("tenant");
        let mut c = Customer::new(CustomerId(uuid::Uuid::now_v7()), tenant, Utc::now());
        let json = serde_json::to_value(&c).expect("json");
        assert!(json.get("suspected_duplicates").is_none(), "an empty list is not written");
        let old: Customer = serde_json::from_value(json).expect("a record without the field");
        assert!(old.suspected_duplicates.is_empty());
        c.suspected_duplicates.push(CustomerId(uuid::Uuid::now_v7()));
        let back: Customer = serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("read");
        assert_eq!(back, c);
    }
}
