-- subscription (reads subscription_events)
SELECT DATE_TRUNC('QUARTER', "occurred_at" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket, "currency" AS currency, SUM(CASE WHEN "kind" IN (%s, %s) THEN CASE WHEN "kind" = %s THEN (%s - "amount") ELSE "amount" END END) AS p0 FROM subscription_events WHERE "occurred_at" >= %s AND "occurred_at" < %s GROUP BY DATE_TRUNC('QUARTER', "occurred_at" AT TIME ZONE 'UTC'), "currency";
-- params: 6
