/*
id: password_spray
title: Password spray - one source failing against many accounts
description: >
  One source address with failed logons (Security 4625) against ten or more distinct accounts on one host within
  five minutes. Account names are compared case-insensitively; the alert carries the number of distinct accounts,
  the number of failures and the first ten account names in alphabetical order.
hypothesis: >
  An attacker sprays one or a few common passwords (Season+Year, Company123!) across many accounts from one
  machine, staying under the per-account lockout threshold. Each account fails only once or twice, so per-account
  guessing rules stay silent, but one source failing against ten or more different accounts on the same
  authenticating host (a DC, an RDP gateway, an Exchange/ADFS server) within five minutes is not user error.
  Known benign sources of many users (VPN concentrators, Citrix/RDS gateways, reverse proxies that forward to
  the DC) need tuning by ip_address.
attack:
  techniques: [T1110.003]
  tactics: [credential-access]
severity: high
window: hopping 5m every 1m
allowed_lateness: 30s
entity: ip_address
response:
  - Search for 4624 successes from ip_address after first_seen, for any of the sprayed accounts - each success is a compromised account; reset those passwords and revoke their sessions first.
  - Identify and contain the source - resolve ip_address to an asset/owner; isolate an internal host (it is likely compromised), block an external one at the perimeter.
  - Read the SubStatus spread - many 0xc0000064 (no such user) means the attacker enumerates names, 0xc000006a (wrong password) means a valid user list.
  - Widen the time range - sprays are often slow; count this source's distinct failed accounts over the last 24 hours and across all DCs.
  - Check lockout and MFA coverage for the targeted accounts and enforce smart lockout / banned-password lists.
references:
  - https://attack.mitre.org/techniques/T1110/003/
  - https://learn.microsoft.com/en-us/windows/security/threat-protection/auditing/event-4625
*/
SELECT
  window_start,
  window_end,
  host,
  ip_address,
  count(DISTINCT lower(target_user_name)) AS distinct_users,
  count(*) AS failures,
  array_slice(array_sort(array_agg(DISTINCT lower(target_user_name))), 1, 10) AS sample_users,
  min(event_time) AS first_seen,
  max(event_time) AS last_seen
FROM events
WHERE lower(channel) = 'security'
  AND event_id = 4625
  AND ip_address IS NOT NULL
  AND ip_address NOT IN ('-', '')
  AND target_user_name IS NOT NULL
  AND target_user_name NOT IN ('-', '')
GROUP BY window_start, window_end, host, ip_address
HAVING count(DISTINCT lower(target_user_name)) >= 10
