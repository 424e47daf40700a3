-- Each hosting account's SFTP login on its server (issue #18): a system
-- user named from the account id (`s` + its first 16 hex digits), set when
-- the site is created.
ALTER TABLE hosting_accounts ADD COLUMN username text CHECK (username ~ '^s[0-9a-f]{16}$');

-- Changing a site's SFTP login (a new password, an added key) is a job:
-- only the worker reaches the servers.
ALTER TABLE jobs DROP CONSTRAINT jobs_type_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_type_check CHECK (type IN ('PROVISION_DNS', 'PROVISION_HOSTING',
    'PROVISION_MAIL', 'SUSPEND_SERVICE', 'UNSUSPEND_SERVICE', 'TERMINATE_SERVICE', 'UPDATE_SFTP_LOGIN'));
