/*
id: kill_chain
title: Attack progressing through the kill chain on one host
description: >
  Within one hour, the alerts of one host show three or more ATT&CK tactics in kill-chain order - for
  example execution, then credential access, then lateral movement - each from a different alert, in event
  time order. `chain` is the longest such run (kill_chain() over the alerts' tactics in time order).
hypothesis: >
  An intruder on a host moves through the stages of an attack in order: runs code, escalates or steals
  credentials, then moves on. Alerts that each look like one stage, on one host, in that order and within
  an hour, are one attack rather than coincidence.
attack:
  techniques: []
  tactics: []
severity: critical
window: hopping 1h every 10m
entity: host
response:
  - Isolate the host now - the attack has reached lateral movement or is about to - and keep its memory for forensics.
  - Identify every account used on the host in the incident's window and treat them as compromised.
  - Identify where it moved next - the targets of the lateral-movement alerts - and open their timelines.
  - Reset the passwords and revoke the sessions of those accounts once the hosts are contained.
*/
SELECT
  window_start,
  window_end,
  host,
  kill_chain(array_agg(tactics ORDER BY time, alert_id)) AS chain,
  count(*) AS alerts,
  sum(risk) AS risk,
  array_agg(alert_id ORDER BY time, alert_id) AS alert_ids,
  min(time) AS first_seen,
  max(time) AS last_seen
FROM alerts
WHERE host IS NOT NULL AND tactics IS NOT NULL
GROUP BY window_start, window_end, host
HAVING cardinality(kill_chain(array_agg(tactics ORDER BY time, alert_id))) >= 3
