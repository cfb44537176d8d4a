-- behavior (reads behavior_events)
SELECT DATE_TRUNC('DAY', "occurred_at" AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York' AS bucket, "feature" AS feature, COUNT(*) AS p0, COUNT(DISTINCT "user_id") AS p1, COUNT(CASE WHEN "success" = %s THEN 1 END) AS p2, COUNT(CASE WHEN NOT "success" IS NULL THEN 1 END) AS p3 FROM behavior_events WHERE "occurred_at" >= %s AND "occurred_at" < %s GROUP BY DATE_TRUNC('DAY', "occurred_at" AT TIME ZONE 'America/New_York'), "feature";
-- params: 3
