-- subscription (reads subscription_events)
SELECT "attributed_feature" AS attributed_feature, "currency" AS currency, SUM(CASE WHEN "kind" IN (?, ?) THEN CASE WHEN "kind" = ? THEN (? - "amount") ELSE "amount" END END) AS p0 FROM subscription_events WHERE "occurred_at" >= ? AND "occurred_at" < ? GROUP BY "attributed_feature", "currency";
-- params: 6
