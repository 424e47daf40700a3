-- Provisioning: a hosting account exists (PENDING) from the moment a server
-- is assigned, so the DNS and hosting jobs agree on the server whatever
-- order they run in.
ALTER TABLE hosting_accounts DROP CONSTRAINT hosting_accounts_status_check;
ALTER TABLE hosting_accounts ADD CONSTRAINT hosting_accounts_status_check
    CHECK (status IN ('PENDING', 'ACTIVE', 'SUSPENDED', 'TERMINATED'));

-- What Dovecot's SQL passdb/userdb reads (password_query / user_query):
--   password_query = SELECT "user", password FROM dovecot_users WHERE "user" = '%u'
--   user_query     = SELECT home, quota_rule AS userdb_quota_rule FROM dovecot_users WHERE "user" = '%u'
-- Only active mailboxes of live domains can log in.
CREATE VIEW dovecot_users AS
SELECT lower(m.local_part || '@' || m.domain_name) AS "user",
       '{ARGON2ID}' || m.password_hash AS password,
       '/var/vmail/' || m.domain_name || '/' || m.local_part AS home,
       '*:storage=' || m.quota_mb || 'M' AS quota_rule
FROM mail_accounts m
JOIN domains d ON d.id = m.domain_id
WHERE m.status = 'ACTIVE' AND d.status IN ('PENDING', 'ACTIVE');

CREATE UNIQUE INDEX dns_zones_domain_key ON dns_zones (domain_id) WHERE status = 'ACTIVE';
CREATE INDEX jobs_subscription_type_idx ON jobs (subscription_id, type);
