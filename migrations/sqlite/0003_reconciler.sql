-- Where the reconciler got to for each organisation (and integration): it asks Buildkite
-- for failed builds finished since `finished_from` (unix milliseconds), so builds whose
-- webhook never arrived are still analysed, also after kitefix was down for a while.
CREATE TABLE reconcile_cursors (
    target        TEXT    PRIMARY KEY,        -- `org` or `org/integration id`
    finished_from BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
