-- Buildkite organisations connected through /api/integrations or the CLI.
-- Tokens are stored only encrypted (XChaCha20-Poly1305, src/integrations/cipher.rs):
-- key_id names the key that sealed both ciphertexts, the nonces are per ciphertext.
-- A removed integration keeps its row (history, last use) with its ciphertexts emptied.
CREATE TABLE integrations (
    id                       TEXT    PRIMARY KEY,   -- UUID, part of the webhook URL
    org_slug                 TEXT    NOT NULL,
    api_token_ciphertext     BYTEA   NOT NULL,
    api_token_nonce          BYTEA   NOT NULL,
    webhook_token_ciphertext BYTEA   NOT NULL,
    webhook_token_nonce      BYTEA   NOT NULL,
    key_id                   TEXT    NOT NULL,
    token_last4              TEXT    NOT NULL,      -- shown to admins instead of the token
    scopes                   TEXT    NOT NULL,      -- JSON array, as Buildkite last reported
    status                   TEXT    NOT NULL,      -- connected | missing_scopes | token_rejected | removed
    reason                   TEXT,                  -- why it is not connected, for humans
    created_at               BIGINT NOT NULL,
    verified_at              BIGINT,
    last_webhook_at          BIGINT,
    removed_at               BIGINT
);
-- One live integration per organisation; removed ones do not count.
CREATE UNIQUE INDEX integrations_active_org ON integrations (org_slug) WHERE status <> 'removed';
