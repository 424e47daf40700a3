-- HTTPS by default (issue #19): one certificate per live domain, issued
-- through ACME DNS-01 and renewed in place; each tenant's ACME account.

ALTER TABLE ssl_certificates DROP CONSTRAINT ssl_certificates_status_check;
ALTER TABLE ssl_certificates ADD CONSTRAINT ssl_certificates_status_check
    CHECK (status IN ('PENDING', 'ISSUED', 'RENEWING', 'FAILED', 'EXPIRED', 'DELETED', 'REVOKED'));
ALTER TABLE ssl_certificates
    ADD COLUMN subscription_id  uuid,
    ADD COLUMN names            text[] NOT NULL DEFAULT '{}',
    ADD COLUMN serial           text,
    -- The private key sealed (AES-256-GCM, nonce first) with the tenant's
    -- data key, which lives beside its SSH key (Secrets Manager or a key
    -- directory), never in Postgres.
    ADD COLUMN private_key_sealed bytea,
    ADD COLUMN last_error       text,
    -- Consecutive failed issuances; the sweep stops asking after a bound.
    ADD COLUMN failures         integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at  timestamptz,
    -- Two thirds of the lifetime of the certificate in use.
    ADD COLUMN renew_at         timestamptz,
    ADD COLUMN alarm_raised_at  timestamptz,
    -- The job that issued the stored certificate: its retries only install.
    ADD COLUMN issued_by_job    uuid,
    ADD COLUMN installed_at     timestamptz;
-- One live certificate per domain, replaced in place on renewal.
CREATE UNIQUE INDEX ssl_certificates_domain_live_key ON ssl_certificates (domain_id) WHERE status <> 'DELETED';
CREATE INDEX ssl_certificates_tenant_list_idx ON ssl_certificates (tenant_id, created_at DESC, id DESC);
CREATE INDEX ssl_certificates_renew_idx ON ssl_certificates (renew_at) WHERE status = 'ISSUED';
CREATE INDEX ssl_certificates_retry_idx ON ssl_certificates (next_attempt_at) WHERE status = 'FAILED';

-- One ACME account per tenant and ACME server; the credentials (its key)
-- are sealed like certificate keys.
CREATE TABLE acme_accounts (
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    directory_url        text NOT NULL CHECK (length(directory_url) <= 500),
    contact              text,
    credentials_sealed   bytea NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, directory_url)
);

ALTER TABLE jobs DROP CONSTRAINT jobs_type_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_type_check CHECK (type IN ('PROVISION_DNS', 'PROVISION_HOSTING',
    'PROVISION_MAIL', 'SUSPEND_SERVICE', 'UNSUSPEND_SERVICE', 'TERMINATE_SERVICE', 'UPDATE_SFTP_LOGIN',
    'ISSUE_CERTIFICATE'));
