-- v14: the call context (docs/protocol.md, "Call context"). What the
-- server's call policy did with each accepted decision (the context itself
-- is in the decision's signed receipt), and the approvals it stopped: those
-- have no decision row (the request was cancelled), so their context is
-- kept here for the service provider's status call and the audit of a scam.
ALTER TABLE decisions ADD COLUMN call_verdict TEXT NOT NULL DEFAULT 'clear'
    CHECK (call_verdict IN ('clear', 'allowed', 'flagged'));
CREATE TABLE call_stops (
    request_id BYTEA PRIMARY KEY REFERENCES requests(id),
    authenticator_id BYTEA NOT NULL REFERENCES authenticators(id),
    call_context TEXT NOT NULL,
    stopped_at_ms BIGINT NOT NULL
);
