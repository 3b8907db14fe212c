//! The data model: plain serde data, no I/O.
//!
//! A [`Customer`] is the person; an [`Identity`] is one of their addresses on one channel; a
//! [`Conversation`] is one piece of work with them, possibly across channels; a [`Message`]
//! carries channel-neutral [`Content`]. Every stored record carries its [`TenantId`].

mod channel;
mod content;
mod conversation;
mod customer;
mod ids;
mod inbound;
mod lang;
mod message;

pub use channel::{Address, AddressKind, ChannelKind, NormalizedAddress, Verification};
pub use content::{ChoiceOption, ContactCard, Content, ContentLimits, MediaKind};
pub use conversation::{ChannelUse, Conversation, ConversationStatus, Handler, Priority};
pub use customer::{Attributes, Consent, ConsentState, Customer, CustomerState, EndpointActivity, Identity};
pub use ids::{AgentId, ConversationId, CustomerId, EndpointId, EventId, IdentityId, MessageId, QueueId, TenantId};
pub use inbound::{Claim, CustomerKey, InboundMessage, ThreadHints};
pub use lang::{LanguageTag, TimeZoneName};
pub use message::{Author, DeliveryState, DeliveryStatus, Direction, Message};
