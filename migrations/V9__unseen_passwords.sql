-- Performance (issue #21): the postmaster mailbox made by PROVISION_MAIL has
-- no password until staff set one with reset-password (shown once). Hashing
-- a random password nobody would ever see cost every order an Argon2id run.
-- A mailbox without a password cannot log in: Dovecot refuses an empty
-- password, and dovecot_users lists only mailboxes that have one.

ALTER TABLE mail_accounts ALTER COLUMN password_hash DROP NOT NULL;

CREATE OR REPLACE VIEW dovecot_users AS
SELECT lower(m.local_part || '@' || m.domain_name) AS "user",
       '{ARGON2ID}' || m.password_hash AS password,
       '/var/vmail/' || m.domain_name || '/' || m.local_part AS home,
       '*:storage=' || m.quota_mb || 'M' AS quota_rule
FROM mail_accounts m
JOIN domains d ON d.id = m.domain_id
WHERE m.status = 'ACTIVE' AND d.status IN ('PENDING', 'ACTIVE') AND m.password_hash IS NOT NULL;
