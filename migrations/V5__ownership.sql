-- Destructive paths touch only what is ours (issue #17).

-- Sites created before ownership markers existed: the first job that
-- touches one writes its marker (our own database row is the record that
-- we created it). Every site created from now on is marked at creation.
ALTER TABLE hosting_accounts ADD COLUMN site_unmarked boolean NOT NULL DEFAULT false;
UPDATE hosting_accounts SET site_unmarked = true WHERE status <> 'TERMINATED';

-- Where suspend put the live `public/`, under `<webRoot>/.mpanel/held/`,
-- a name only mPanel writes; unsuspend restores exactly this and nothing
-- else. Sites suspended before this change were held in the site itself.
ALTER TABLE hosting_accounts ADD COLUMN held_name text
    CHECK (held_name ~ '^[0-9a-f]{32}-[0-9a-f]{32}$' OR held_name = '.legacy');
UPDATE hosting_accounts SET held_name = '.legacy' WHERE status = 'SUSPENDED';

-- The verified archive a termination left, unique to its job.
ALTER TABLE hosting_accounts ADD COLUMN archive_path text;

-- Billing events apply in the order they happened: an event older than the
-- last one applied is recorded and ignored.
ALTER TABLE subscriptions ADD COLUMN billing_event_at timestamptz;

-- One SSH identity per tenant: the public half (shown to the tenant's
-- admins, installed on its servers). The private half is in Secrets
-- Manager or SSH_KEY_DIR, never here.
CREATE TABLE tenant_ssh_keys (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id),
    public_key  text NOT NULL CHECK (public_key LIKE 'ssh-ed25519 %'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Which key jobs use for a server. Servers registered before tenant keys
-- keep the platform key until an admin moves them (PATCH sshIdentity
-- TENANT after installing the tenant's key); their address and login
-- cannot change meanwhile, so the platform identity cannot be re-aimed.
ALTER TABLE servers ADD COLUMN ssh_identity text NOT NULL DEFAULT 'TENANT'
    CHECK (ssh_identity IN ('TENANT', 'PLATFORM'));
UPDATE servers SET ssh_identity = 'PLATFORM';
