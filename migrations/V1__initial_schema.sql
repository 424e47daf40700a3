-- mPanel schema v1. Forward-only: never edit an applied migration, add a new one.
--
-- Conventions:
--  * ids are UUIDs (gen_random_uuid, built into PostgreSQL 13+);
--  * every tenant-owned row carries tenant_id, and child rows reference their
--    parent together with tenant_id so a row can never point across tenants;
--  * statuses are text constrained to the API contract's values;
--  * user-facing identifiers that people type (emails, slugs, domains) are
--    unique case-insensitively through indexes on lower(...);
--  * every list filter has an index that starts with tenant_id and ends with
--    the list order (created_at DESC, id DESC) for keyset pagination.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 64),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED')),
    -- Per-tenant policy, e.g. {"paymentGraceDays": 7}.
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_slug_key ON tenants (lower(slug));
CREATE INDEX tenants_list_idx ON tenants (created_at DESC, id DESC);

CREATE TABLE users (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    email                text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash        text NOT NULL,
    display_name         text CHECK (length(display_name) <= 200),
    role                 text NOT NULL CHECK (role IN ('SUPER_ADMIN', 'ADMIN', 'BILLING', 'SUPPORT', 'READ_ONLY')),
    status               text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED')),
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    last_login_at        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
-- Login takes only an email, so emails are unique across tenants.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_list_idx ON users (tenant_id, created_at DESC, id DESC);

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    user_id      uuid NOT NULL,
    family_id    uuid NOT NULL,
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz,
    replaced_by  uuid REFERENCES refresh_tokens (id),
    ip           inet,
    user_agent   text,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

CREATE TABLE servers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('WEB', 'MAIL', 'DNS')),
    ip_address  inet NOT NULL,
    ssh_host    text NOT NULL CHECK (length(ssh_host) BETWEEN 1 AND 253),
    ssh_port    integer NOT NULL DEFAULT 22 CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user    text NOT NULL CHECK (ssh_user ~ '^[a-z_][a-z0-9_-]{0,31}$'),
    -- The server's public host key line, e.g. "ssh-ed25519 AAAA...": pinned.
    host_key    text NOT NULL CHECK (host_key ~ '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+$'),
    web_root    text NOT NULL CHECK (web_root ~ '^/[A-Za-z0-9._/-]*$' AND web_root !~ '(^|/)\.\.(/|$)'),
    status      text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX servers_tenant_name_key ON servers (tenant_id, lower(name));
CREATE INDEX servers_tenant_list_idx ON servers (tenant_id, created_at DESC, id DESC);
CREATE INDEX servers_pick_idx ON servers (tenant_id, role) WHERE status = 'ACTIVE';

CREATE TABLE products (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug         text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 64),
    type         text NOT NULL CHECK (type IN ('SHARED_HOSTING', 'VPS', 'EMAIL', 'DNS', 'ADDON')),
    description  text CHECK (length(description) <= 5000),
    limits       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(limits) = 'object'),
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX products_tenant_slug_key ON products (tenant_id, lower(slug));
CREATE INDEX products_tenant_list_idx ON products (tenant_id, created_at DESC, id DESC);

CREATE TABLE prices (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    product_id         uuid NOT NULL,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug               text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 64),
    interval           text NOT NULL CHECK (interval IN ('MONTHLY', 'QUARTERLY', 'SEMI_ANNUALLY', 'YEARLY', 'BIENNIALLY', 'TRIENNIALLY', 'ONE_TIME')),
    amount_cents       bigint NOT NULL CHECK (amount_cents >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    is_popular         boolean NOT NULL DEFAULT false,
    is_active          boolean NOT NULL DEFAULT true,
    -- Payment provider's id for the price; internal, never in public listings.
    provider_price_id  text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);
-- The order webhook names a price by slug within the tenant.
CREATE UNIQUE INDEX prices_tenant_slug_key ON prices (tenant_id, lower(slug));
CREATE INDEX prices_product_idx ON prices (product_id) WHERE is_active;

CREATE TABLE customers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    full_name   text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    phone       text CHECK (length(phone) <= 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX customers_tenant_email_key ON customers (tenant_id, lower(email));
CREATE INDEX customers_tenant_list_idx ON customers (tenant_id, created_at DESC, id DESC);

CREATE TABLE orders (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    customer_id         uuid NOT NULL,
    price_id            uuid NOT NULL,
    external_order_id   text NOT NULL CHECK (length(external_order_id) BETWEEN 1 AND 200),
    status              text NOT NULL DEFAULT 'PAID' CHECK (status IN ('PAID', 'CANCELLED', 'REFUNDED')),
    total_amount_cents  bigint NOT NULL CHECK (total_amount_cents >= 0),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    domain              text,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- SHA-256 of the canonical request, to tell a replay from a conflicting reuse.
    request_hash        bytea NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, price_id) REFERENCES prices (tenant_id, id)
);
CREATE UNIQUE INDEX orders_tenant_external_id_key ON orders (tenant_id, external_order_id);
CREATE INDEX orders_tenant_list_idx ON orders (tenant_id, created_at DESC, id DESC);
CREATE INDEX orders_tenant_status_idx ON orders (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX orders_tenant_customer_idx ON orders (tenant_id, customer_id, created_at DESC, id DESC);

CREATE TABLE subscriptions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL REFERENCES tenants (id),
    customer_id           uuid NOT NULL,
    order_id              uuid NOT NULL,
    product_id            uuid NOT NULL,
    price_id              uuid NOT NULL,
    status                text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'ACTIVE', 'PROVISIONING_FAILED', 'SUSPENDED', 'TERMINATED')),
    current_period_start  timestamptz NOT NULL DEFAULT now(),
    -- NULL for ONE_TIME prices.
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    suspended_reason      text CHECK (length(suspended_reason) <= 1000),
    suspended_at          timestamptz,
    activated_at          timestamptz,
    terminated_at         timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id),
    FOREIGN KEY (tenant_id, price_id) REFERENCES prices (tenant_id, id)
);
CREATE INDEX subscriptions_tenant_list_idx ON subscriptions (tenant_id, created_at DESC, id DESC);
CREATE INDEX subscriptions_tenant_status_idx ON subscriptions (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX subscriptions_order_idx ON subscriptions (order_id);
CREATE INDEX subscriptions_customer_idx ON subscriptions (tenant_id, customer_id);
CREATE INDEX subscriptions_period_end_idx ON subscriptions (current_period_end) WHERE status IN ('ACTIVE', 'SUSPENDED');

CREATE TABLE domains (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    subscription_id  uuid NOT NULL,
    -- ASCII (IDNA) form, lower case, no trailing dot.
    name             text NOT NULL CHECK (name = lower(name) AND length(name) BETWEEN 1 AND 253),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'ACTIVE', 'SUSPENDED', 'RELEASED')),
    released_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);
-- One live holder per domain across all tenants; a released domain may be ordered again.
CREATE UNIQUE INDEX domains_name_held_key ON domains (lower(name)) WHERE status <> 'RELEASED';
CREATE INDEX domains_subscription_idx ON domains (subscription_id);
CREATE INDEX domains_tenant_list_idx ON domains (tenant_id, created_at DESC, id DESC);

CREATE TABLE dns_zones (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    domain_id    uuid NOT NULL,
    -- Zone name as PowerDNS knows it, with the trailing dot.
    name         text NOT NULL CHECK (name = lower(name) AND name LIKE '%.'),
    kind         text NOT NULL DEFAULT 'Native' CHECK (kind IN ('Native', 'Master', 'Slave')),
    status       text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DELETED')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, domain_id) REFERENCES domains (tenant_id, id)
);
CREATE UNIQUE INDEX dns_zones_name_key ON dns_zones (name) WHERE status = 'ACTIVE';
CREATE INDEX dns_zones_domain_idx ON dns_zones (domain_id);

CREATE TABLE dns_records (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    zone_id     uuid NOT NULL,
    name        text NOT NULL CHECK (name LIKE '%.'),
    type        text NOT NULL CHECK (type IN ('A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS', 'SRV', 'CAA')),
    content     text NOT NULL CHECK (length(content) <= 4096),
    ttl         integer NOT NULL DEFAULT 3600 CHECK (ttl BETWEEN 1 AND 604800),
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, zone_id) REFERENCES dns_zones (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX dns_records_rr_key ON dns_records (zone_id, name, type, content);

CREATE TABLE hosting_accounts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    subscription_id  uuid NOT NULL,
    server_id        uuid NOT NULL,
    domain_id        uuid NOT NULL,
    document_root    text NOT NULL,
    disk_quota_mb    integer CHECK (disk_quota_mb >= 0),
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'TERMINATED')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id),
    FOREIGN KEY (tenant_id, domain_id) REFERENCES domains (tenant_id, id)
);
CREATE UNIQUE INDEX hosting_accounts_subscription_key ON hosting_accounts (subscription_id) WHERE status <> 'TERMINATED';
-- "Fewest accounts first" when picking a server.
CREATE INDEX hosting_accounts_server_idx ON hosting_accounts (server_id) WHERE status <> 'TERMINATED';

CREATE TABLE vps_instances (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    subscription_id  uuid NOT NULL,
    server_id        uuid,
    hostname         text NOT NULL CHECK (length(hostname) BETWEEN 1 AND 253),
    vcpus            integer NOT NULL CHECK (vcpus > 0),
    memory_mb        integer NOT NULL CHECK (memory_mb > 0),
    disk_gb          integer NOT NULL CHECK (disk_gb > 0),
    ip_address       inet,
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'STOPPED', 'TERMINATED')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id)
);
CREATE INDEX vps_instances_tenant_list_idx ON vps_instances (tenant_id, created_at DESC, id DESC);

CREATE TABLE mail_accounts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    subscription_id  uuid NOT NULL,
    domain_id        uuid NOT NULL,
    local_part       text NOT NULL CHECK (local_part ~ '^[a-z0-9]([a-z0-9._+-]{0,62}[a-z0-9])?$'),
    domain_name      text NOT NULL CHECK (domain_name = lower(domain_name)),
    -- Argon2id PHC string only; never a plain password.
    password_hash    text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    quota_mb         integer NOT NULL DEFAULT 1024 CHECK (quota_mb >= 0),
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, domain_id) REFERENCES domains (tenant_id, id)
);
CREATE UNIQUE INDEX mail_accounts_address_key ON mail_accounts (lower(local_part || '@' || domain_name));
CREATE INDEX mail_accounts_tenant_domain_idx ON mail_accounts (tenant_id, domain_name, created_at DESC, id DESC);
CREATE INDEX mail_accounts_tenant_list_idx ON mail_accounts (tenant_id, created_at DESC, id DESC);

CREATE TABLE backup_jobs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    subscription_id     uuid NOT NULL,
    hosting_account_id  uuid,
    kind                text NOT NULL DEFAULT 'FILES' CHECK (kind IN ('FILES', 'DATABASE', 'FULL')),
    status              text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    location            text,
    size_bytes          bigint CHECK (size_bytes >= 0),
    error               text,
    started_at          timestamptz,
    finished_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, hosting_account_id) REFERENCES hosting_accounts (tenant_id, id)
);
CREATE INDEX backup_jobs_tenant_list_idx ON backup_jobs (tenant_id, created_at DESC, id DESC);

CREATE TABLE jobs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    subscription_id  uuid,
    type             text NOT NULL CHECK (type IN ('PROVISION_DNS', 'PROVISION_HOSTING', 'PROVISION_MAIL', 'SUSPEND_SERVICE', 'UNSUSPEND_SERVICE', 'TERMINATE_SERVICE')),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'RETRYING', 'SUCCEEDED', 'DEAD')),
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 8 CHECK (max_attempts >= 1),
    run_after        timestamptz NOT NULL DEFAULT now(),
    -- Lease: a RUNNING job whose lease expired is rescued by the scheduler.
    locked_until     timestamptz,
    locked_by        text,
    last_error       text,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    CHECK (status <> 'RUNNING' OR locked_until IS NOT NULL)
);
-- The claim query: due PENDING/RETRYING jobs by run_after.
CREATE INDEX jobs_claim_idx ON jobs (run_after) WHERE status IN ('PENDING', 'RETRYING');
-- The rescuer: RUNNING jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE status = 'RUNNING';
CREATE INDEX jobs_tenant_list_idx ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_status_idx ON jobs (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_type_idx ON jobs (tenant_id, type, created_at DESC, id DESC);
CREATE INDEX jobs_subscription_idx ON jobs (subscription_id, created_at DESC);

CREATE TABLE job_attempts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    job_id       uuid NOT NULL,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    worker       text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('SUCCEEDED', 'FAILED', 'LEASE_EXPIRED')),
    -- Error text with secrets redacted.
    error        text,
    FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (job_id, attempt)
);

CREATE TABLE audit_logs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL only for events that belong to no tenant (e.g. a login attempt for an unknown email).
    tenant_id      uuid REFERENCES tenants (id),
    actor_type     text NOT NULL CHECK (actor_type IN ('USER', 'SYSTEM', 'WEBHOOK', 'ANONYMOUS')),
    actor_user_id  uuid REFERENCES users (id),
    action         text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
    target_type    text,
    target_id      uuid,
    ip             inet,
    user_agent     text CHECK (length(user_agent) <= 1000),
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_tenant_list_idx ON audit_logs (tenant_id, created_at DESC, id DESC);
CREATE INDEX audit_logs_tenant_action_idx ON audit_logs (tenant_id, action, created_at DESC, id DESC);

CREATE TABLE ssl_certificates (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    domain_id         uuid NOT NULL,
    issuer            text,
    status            text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'ISSUED', 'EXPIRED', 'REVOKED', 'FAILED')),
    not_before        timestamptz,
    not_after         timestamptz,
    certificate_pem   text,
    -- Where the private key is kept (e.g. a Secrets Manager ARN), never the key itself.
    private_key_ref   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, domain_id) REFERENCES domains (tenant_id, id)
);
CREATE INDEX ssl_certificates_domain_idx ON ssl_certificates (domain_id);
CREATE INDEX ssl_certificates_expiry_idx ON ssl_certificates (not_after) WHERE status = 'ISSUED';

-- Idempotency record of every accepted signed webhook (orders, billing events).
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid REFERENCES tenants (id),
    source           text NOT NULL CHECK (source IN ('ORDERS', 'SUBSCRIPTION_EVENTS')),
    webhook_id       text NOT NULL CHECK (length(webhook_id) BETWEEN 1 AND 200),
    request_hash     bytea NOT NULL,
    response_status  integer NOT NULL,
    response_body    jsonb NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX webhook_deliveries_source_webhook_id_key ON webhook_deliveries (source, webhook_id);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);
