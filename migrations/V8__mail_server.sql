-- Mail that works (issue #20): aliases, and the views the shipped mail
-- server (mailserver/: Dovecot, Postfix, OpenDKIM) reads. The mail server's
-- database role may read these views and nothing else.

CREATE TABLE mail_aliases (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    subscription_id  uuid NOT NULL,
    domain_id        uuid NOT NULL,
    local_part       text NOT NULL CHECK (local_part ~ '^[a-z0-9]([a-z0-9._+-]{0,62}[a-z0-9])?$'),
    domain_name      text NOT NULL CHECK (domain_name = lower(domain_name)),
    -- Full addresses, lower case; at most 50.
    destinations     text[] NOT NULL CHECK (cardinality(destinations) BETWEEN 1 AND 50),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, domain_id) REFERENCES domains (tenant_id, id)
);
CREATE UNIQUE INDEX mail_aliases_address_key ON mail_aliases (lower(local_part || '@' || domain_name));
CREATE INDEX mail_aliases_tenant_list_idx ON mail_aliases (tenant_id, created_at DESC, id DESC);

-- The domains Postfix accepts mail for: live ones with a mailbox or alias.
CREATE VIEW mail_server_domains AS
SELECT DISTINCT d.name AS domain, d.status
FROM domains d
WHERE d.status IN ('PENDING', 'ACTIVE', 'SUSPENDED')
  AND (EXISTS (SELECT 1 FROM mail_accounts m WHERE m.domain_id = d.id)
       OR EXISTS (SELECT 1 FROM mail_aliases a WHERE a.domain_id = d.id));

-- Every deliverable address: a mailbox (to itself) or an alias (to its
-- destinations, comma separated, as Postfix's virtual_alias_maps wants).
CREATE VIEW mail_server_addresses AS
SELECT lower(m.local_part || '@' || m.domain_name) AS address,
       m.domain_name || '/' || m.local_part || '/' AS maildir,
       NULL::text AS destinations
FROM mail_accounts m JOIN domains d ON d.id = m.domain_id
WHERE m.status = 'ACTIVE' AND d.status IN ('PENDING', 'ACTIVE', 'SUSPENDED')
UNION ALL
SELECT lower(a.local_part || '@' || a.domain_name), NULL, array_to_string(a.destinations, ',')
FROM mail_aliases a JOIN domains d ON d.id = a.domain_id
WHERE d.status IN ('PENDING', 'ACTIVE', 'SUSPENDED');

-- Mail for a suspended domain is deferred (4xx): the sender keeps it and
-- tries again, so it arrives once the site is unsuspended.
CREATE VIEW mail_server_recipient_access AS
SELECT d.name AS domain, '450 4.2.1 Mailbox temporarily unavailable: the service is suspended'::text AS action
FROM domains d WHERE d.status = 'SUSPENDED';

-- Dovecot's userdb: every mailbox that may still receive mail, suspended
-- ones included (mail already queued is delivered); its passdb
-- (`dovecot_users`) keeps refusing logins to suspended or released domains.
CREATE VIEW dovecot_mailboxes AS
SELECT lower(m.local_part || '@' || m.domain_name) AS "user",
       '/var/vmail/' || m.domain_name || '/' || m.local_part AS home,
       '*:storage=' || m.quota_mb || 'M' AS quota_rule
FROM mail_accounts m
JOIN domains d ON d.id = m.domain_id
WHERE m.status = 'ACTIVE' AND d.status IN ('PENDING', 'ACTIVE', 'SUSPENDED');
