-- subscription (reads subscription_events)
SELECT DATE_TRUNC('QUARTER', MAKE_TIMESTAMP(EPOCH_US("occurred_at"))) AT TIME ZONE 'UTC' AS bucket, "currency" AS currency, SUM(CASE WHEN "kind" IN (?, ?) THEN CASE WHEN "kind" = ? THEN (? - "amount") ELSE "amount" END END) AS p0 FROM subscription_events WHERE "occurred_at" >= ? AND "occurred_at" < ? GROUP BY DATE_TRUNC('QUARTER', MAKE_TIMESTAMP(EPOCH_US("occurred_at"))), "currency";
-- params: 6
