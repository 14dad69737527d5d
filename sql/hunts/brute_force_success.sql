/*
id: brute_force_success
title: Successful logon after a burst of failures from the same source
description: >
  One source address with ten or more failed network / RDP logons (Security 4625, logon type 3, 8 or 10) on a
  host and, later in the same ten-minute window, a successful logon (4624, type 3, 8 or 10) from the same
  address to the same host. Failures may target one account (guessing) or many (spraying). Successful logons of
  computer accounts (ending in $) and ANONYMOUS LOGON are ignored, as are loopback and missing source addresses.
  succeeded_users lists every account that logged on successfully from the source in the window, lower case.
  Hopping windows of 10 minutes every 5 minutes: any sequence up to five minutes long falls whole into at least
  one window, and an incident raises at most two alerts.
hypothesis: >
  A brute-force or spray attack (against RDP, SMB, WinRM or an IIS/Exchange front end) has succeeded: after
  many failures the source finally authenticates, so the attacker now holds a valid password. A user who
  mistypes a few times and then logs on stays far below ten failures.
attack:
  techniques: [T1110.001, T1110.003, T1078]
  tactics: [credential-access, initial-access]
severity: critical
window: hopping 10m every 5m
allowed_lateness: 30s
entity: ip_address
response:
  - Treat each account in succeeded_users as compromised - reset its password, revoke its sessions and tokens, and check MFA registration changes.
  - Find what the source did after last_success - 4624/4634 logon session on host, processes started in that session (Sysmon 1 / 4688), RDP session events (TerminalServices 21/25), file shares accessed (5140).
  - Identify and contain the source - resolve ip_address to an asset; isolate an internal host, block an external address at the perimeter.
  - Check whether the same source reached other hosts with the same credentials (4624 from ip_address across all hosts in the next hours).
  - Review exposure of the attacked service (RDP/SMB reachable from the internet or from user VLANs) and enable account lockout / NLA.
references:
  - https://attack.mitre.org/techniques/T1110/
  - https://learn.microsoft.com/en-us/windows/security/threat-protection/auditing/event-4624
*/
SELECT
  window_start,
  window_end,
  host,
  ip_address,
  count(*) FILTER (WHERE event_id = 4625) AS failures,
  count(DISTINCT lower(target_user_name)) FILTER (WHERE event_id = 4625) AS failed_users,
  array_sort(array_agg(DISTINCT lower(target_user_name)) FILTER (WHERE event_id = 4624)) AS succeeded_users,
  min(event_time) FILTER (WHERE event_id = 4625) AS first_failure,
  max(event_time) FILTER (WHERE event_id = 4625) AS last_failure,
  max(event_time) FILTER (WHERE event_id = 4624) AS last_success
FROM events
WHERE lower(channel) = 'security'
  AND event_id IN (4624, 4625)
  AND logon_type IN (3, 8, 10)
  AND ip_address IS NOT NULL
  AND ip_address NOT IN ('-', '', '127.0.0.1', '::1')
  AND target_user_name IS NOT NULL
  AND NOT (
    event_id = 4624
    AND (ends_with(target_user_name, '$') OR upper(target_user_name) = 'ANONYMOUS LOGON')
  )
GROUP BY window_start, window_end, host, ip_address
HAVING count(*) FILTER (WHERE event_id = 4625) >= 10
  AND max(event_time) FILTER (WHERE event_id = 4624) > min(event_time) FILTER (WHERE event_id = 4625)
