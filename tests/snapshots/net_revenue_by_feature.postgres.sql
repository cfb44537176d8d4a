-- subscription (reads subscription_events)
SELECT "attributed_feature" AS attributed_feature, "currency" AS currency, SUM(CASE WHEN "kind" IN (%s, %s) THEN CASE WHEN "kind" = %s THEN (%s - "amount") ELSE "amount" END END) AS p0 FROM subscription_events WHERE "occurred_at" >= %s AND "occurred_at" < %s GROUP BY "attributed_feature", "currency";
-- params: 6
