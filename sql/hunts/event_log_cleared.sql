/*
id: event_log_cleared
title: Windows event log cleared
description: >
  An event log was cleared - Security 1102 (the audit log was cleared), System 104 (another log was cleared),
  both from the Microsoft-Windows-Eventlog provider - or a process ran a clear command: wevtutil cl /
  clear-log, or PowerShell Clear-EventLog / EventLogSession ClearLog. Querying, listing or exporting logs
  (wevtutil qe / el / gl / epl, Get-EventLog, Get-WinEvent) does not match. action says which of the
  four it is. For 1102/104 in the nested EVTX shape the account that cleared the log sits in UserData, which
  the schema does not map yet, so user may be null; the flat shape carries SubjectUserName.
hypothesis: >
  After acting on a host, an attacker clears the Security, System, Sysmon or PowerShell logs to destroy
  evidence of logons, service installs and commands. Administrators almost never clear production logs by
  hand; a clear outside a documented maintenance is anti-forensics.
attack:
  techniques: [T1070.001]
  tactics: [defense-evasion]
severity: high
window: none
entity: host
response:
  - Establish who cleared the log - user for 1102/104 in flat events, otherwise the account in the raw event's UserData (LogFileCleared/SubjectUserName) or the user of the wevtutil/PowerShell process.
  - Recover what was lost - collect the same period from the SIEM/WEF copy, EDR telemetry and Sysmon (if only one log was cleared), and note the exact gap.
  - Review the activity right before event_time on the host (logons, new services, process creations) - the clear usually follows the part the attacker wanted to hide.
  - Check other hosts for log clearing and the same account's activity in the same hour; clearing is often scripted across many machines.
  - Isolate the host if the clear is not an approved change, and protect the logs (forward to WEF/SIEM, restrict the Manage auditing and security log right).
references:
  - https://attack.mitre.org/techniques/T1070/001/
  - https://learn.microsoft.com/en-us/windows/security/threat-protection/auditing/event-1102
*/
SELECT
  event_time,
  host,
  event_id,
  CASE
    WHEN event_id = 1102 AND lower(channel) = 'security' THEN 'security-log-cleared'
    WHEN event_id = 104 AND lower(channel) = 'system' THEN 'log-cleared'
    WHEN regexp_like(image, '\\wevtutil\.exe$', 'i') THEN 'wevtutil-clear'
    ELSE 'powershell-clear'
  END AS action,
  coalesce(user, subject_user_name) AS user,
  image,
  command_line
FROM events
WHERE (
    event_id = 1102 AND lower(channel) = 'security' AND lower(provider) = 'microsoft-windows-eventlog'
  )
  OR (
    event_id = 104 AND lower(channel) = 'system' AND lower(provider) = 'microsoft-windows-eventlog'
  )
  OR (
    (
      (lower(channel) = 'microsoft-windows-sysmon/operational' AND event_id = 1)
      OR (lower(channel) = 'security' AND event_id = 4688)
    )
    AND (
      (
        regexp_like(image, '\\wevtutil\.exe$', 'i')
        AND regexp_like(command_line, '\s(cl|clear-log)(\s|$)', 'i')
      )
      OR (
        regexp_like(image, '\\(powershell|pwsh)\.exe$', 'i')
        AND regexp_like(command_line, 'clear-eventlog|\.clearlog\s*\(', 'i')
      )
    )
  )
