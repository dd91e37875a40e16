-- Seeds one tenant's list with many subscribers in a few statements (generate_series), for the console's
-- subscriber routes (bench/membercenter/console.sh). The tenant and list must exist (made through the admin API).
--   psql -v tenant_id=<uuid> -v list_id=<uuid> -v count=1000000 -f bench/membercenter/console-seed.sql
-- Addresses: <8 hex>.<n>@example<n % 50>.com (so prefixes spread like real ones); ids are UUIDv7-shaped and
-- time-ordered like the ones Member Center makes; 90 % confirmed, 5 % pending, 5 % unsubscribed, each with
-- preferences and one consent record.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
BEGIN;
CREATE TEMP TABLE seed ON COMMIT DROP AS
SELECT g,
       (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint - :count + g), 12, '0') || '7'
         || substr(md5('s' || g), 1, 3) || '8' || substr(md5('s' || g), 4, 15))::uuid AS subscriber_id,
       (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint - :count + g), 12, '0') || '7'
         || substr(md5('p' || g), 1, 3) || '9' || substr(md5('p' || g), 4, 15))::uuid AS subscription_id,
       substr(md5(g::text), 1, 8) || '.' || g || '@example' || (g % 50) || '.com' AS email,
       now() - make_interval(secs => :count - g) AS at
FROM generate_series(1, :count) AS g;

INSERT INTO subscribers (id, tenant_id, email, email_key, created_at)
SELECT subscriber_id, :'tenant_id', email, email, at FROM seed;

INSERT INTO subscriptions (id, list_id, subscriber_id, status, preferences, created_at, updated_at, confirmed_at, unsubscribed_at,
    confirm_mails_in_window)
SELECT subscription_id, :'list_id', subscriber_id,
       CASE WHEN g % 20 = 0 THEN 0 WHEN g % 20 = 1 THEN 2 ELSE 1 END,
       jsonb_build_object('lang', CASE WHEN g % 3 = 0 THEN 'de' ELSE 'en' END, 'n', g),
       at, at,
       CASE WHEN g % 20 <> 0 THEN at END,
       CASE WHEN g % 20 = 1 THEN at END,
       0
FROM seed;

INSERT INTO consent_records (tenant_id, list_id, subscriber_id, action, source, ip_address, occurred_at, details)
SELECT :'tenant_id', :'list_id', subscriber_id, 'subscribe', 'import', '127.0.0.1', at, '{"note":"console bench seed"}'::jsonb
FROM seed;
COMMIT;
ANALYZE subscribers;
ANALYZE subscriptions;
ANALYZE consent_records;
