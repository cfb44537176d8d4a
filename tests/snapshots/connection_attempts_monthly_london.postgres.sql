-- connection_attempt (reads connection_attempt_events)
SELECT DATE_TRUNC('MONTH', "occurred_at" AT TIME ZONE 'Europe/London') AT TIME ZONE 'Europe/London' AS bucket, COUNT(*) AS p0, COUNT(CASE WHEN "outcome" = %s THEN 1 END) AS p1, COUNT(CASE WHEN "outcome" = %s OR ("outcome" = %s AND "error_category" = %s) OR ("outcome" = %s AND "error_category" IN (%s, %s)) THEN 1 END) AS p2 FROM connection_attempt_events WHERE "occurred_at" >= %s AND "occurred_at" < %s GROUP BY DATE_TRUNC('MONTH', "occurred_at" AT TIME ZONE 'Europe/London');
-- params: 9
