-- connection_attempt (reads connection_attempt_events)
SELECT DATE_TRUNC('MONTH', "occurred_at" AT TIME ZONE 'Europe/London') AT TIME ZONE 'Europe/London' AS bucket, COUNT(*) AS p0, COUNT(CASE WHEN "outcome" = ? THEN 1 END) AS p1, COUNT(CASE WHEN "outcome" = ? OR ("outcome" = ? AND "error_category" = ?) OR ("outcome" = ? AND "error_category" IN (?, ?)) THEN 1 END) AS p2 FROM connection_attempt_events WHERE "occurred_at" >= ? AND "occurred_at" < ? GROUP BY DATE_TRUNC('MONTH', "occurred_at" AT TIME ZONE 'Europe/London');
-- params: 9
