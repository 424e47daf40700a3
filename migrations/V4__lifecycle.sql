-- Service lifecycle: billing state the scheduler acts on.

-- Set by a `payment_failed` billing event, cleared by `renewed`; the sweep
-- suspends the subscription once the tenant's grace period has passed.
ALTER TABLE subscriptions ADD COLUMN payment_failed_at timestamptz;
-- Why a subscription is suspended: STAFF (by hand) or NON_PAYMENT (by the
-- sweep); `renewed` only lifts a NON_PAYMENT suspension.
ALTER TABLE subscriptions ADD COLUMN suspended_for text CHECK (suspended_for IN ('STAFF', 'NON_PAYMENT'));

CREATE INDEX subscriptions_payment_failed_idx ON subscriptions (payment_failed_at)
    WHERE payment_failed_at IS NOT NULL AND status = 'ACTIVE';
CREATE INDEX subscriptions_cancel_due_idx ON subscriptions (current_period_end)
    WHERE cancel_at_period_end AND status IN ('ACTIVE', 'SUSPENDED');
