-- Order intake: dispatch bookkeeping for the transactional outbox, and the
-- link from a webhook delivery to the order it created (for replays by
-- externalOrderId).

-- When the job's id was last handed to Redis/SQS. NULL: never (the sweep
-- sends it); an old value with the job still PENDING: the hint was lost
-- (the sweep sends it again).
ALTER TABLE jobs ADD COLUMN dispatched_at timestamptz;

ALTER TABLE webhook_deliveries ADD COLUMN order_id uuid REFERENCES orders (id);
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (order_id, received_at) WHERE order_id IS NOT NULL;
