//! Buildkite webhooks: proving where they came from and what they say.

pub mod event;
pub mod signature;

pub use event::{EventName, PayloadError, WebhookEvent};
pub use signature::{AuthError, Credential};
