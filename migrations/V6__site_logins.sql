-- Each hosting account's SFTP login on its server (issue #18): a system
-- user named from the account id (`s` + its first 16 hex digits), set when
-- the site is created.
ALTER TABLE hosting_accounts ADD COLUMN username text CHECK (username ~ '^s[0-9a-f]{16}$');
