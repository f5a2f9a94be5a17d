//! The workers' `TokenSource` backed by the integrations table, falling back to
//! `buildkite.token` for organisations that were never connected.

use async_trait::async_trait;
use secrecy::SecretString;

use super::Integrations;
use crate::domain::{IntegrationId, OrgSlug};
use crate::store::{IntegrationRecord, IntegrationStatus};
use crate::tokens::{TokenError, TokenSource};

pub struct StoreTokens {
    integrations: Integrations,
    fallback: Option<SecretString>,
}

impl StoreTokens {
    pub fn new(integrations: Integrations, fallback: Option<SecretString>) -> Self {
        Self { integrations, fallback }
    }

    fn usable(
        &self,
        org: &OrgSlug,
        record: &IntegrationRecord,
    ) -> Result<SecretString, TokenError> {
        let disabled = |reason: String| TokenError::Disabled { org: org.to_string(), reason };
        if record.org_slug != org.as_str() {
            // A webhook for one organisation's integration naming another organisation:
            // never lend one organisation's token to another.
            return Err(disabled(format!(
                "the webhook came through the integration of `{}`",
                record.org_slug
            )));
        }
        match record.status {
            IntegrationStatus::Connected => self
                .integrations
                .api_token(record)
                .map_err(|e| TokenError::Unavailable(e.to_string())),
            IntegrationStatus::Removed => {
                Err(disabled(format!("integration {} was removed", record.id)))
            }
            status => Err(disabled(
                record.reason.clone().unwrap_or_else(|| format!("its status is {status}")),
            )),
        }
    }
}

#[async_trait]
impl TokenSource for StoreTokens {
    #[tracing::instrument(name = "tokens.token_for", skip_all, fields(org = %org, integration_id = integration_id.map(IntegrationId::as_str).unwrap_or("")))]
    async fn token_for(
        &self,
        org: &OrgSlug,
        integration_id: Option<&IntegrationId>,
    ) -> Result<SecretString, TokenError> {
        let store = &self.integrations.store;
        let unavailable = |e: crate::store::StoreError| TokenError::Unavailable(e.to_string());
        let record = match integration_id {
            Some(id) => {
                Some(store.integration(id.as_str()).await.map_err(unavailable)?.ok_or_else(
                    || TokenError::Disabled {
                        org: org.to_string(),
                        reason: format!("integration {id} does not exist"),
                    },
                )?)
            }
            None => store.active_integration_for_org(org.as_str()).await.map_err(unavailable)?,
        };
        match record {
            Some(record) => self.usable(org, &record),
            None => self
                .fallback
                .clone()
                .ok_or_else(|| TokenError::NotConnected { org: org.to_string() }),
        }
    }
}
