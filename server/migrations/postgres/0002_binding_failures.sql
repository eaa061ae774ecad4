-- v2: wrong login-screen codes per request (cancelled after a few).
ALTER TABLE requests ADD COLUMN binding_failures BIGINT NOT NULL DEFAULT 0;
