/*
id: ps_remoting_lateral_movement
title: PowerShell remoting used for lateral movement
description: >
  Flags both ends of a PowerShell remoting (WinRM) session. Source side: powershell.exe or pwsh.exe started by
  explorer.exe, svchost.exe or wsmprovhost.exe whose command line calls Invoke-Command, Enter-PSSession,
  New-PSSession or passes -ComputerName. Target side: any process spawned by wsmprovhost.exe, the WinRM plug-in
  host in which every remote PowerShell session runs. Sysmon event 1 and Security 4688.
hypothesis: >
  An operator holding valid (often stolen) credentials moves laterally with PowerShell remoting: on the source
  host PowerShell is launched with Invoke-Command / Enter-PSSession / New-PSSession or -ComputerName against
  another machine, and on the target host the commands run as children of wsmprovhost.exe. Administrators use
  remoting too, so the value is in who, from where, to where and what ran: remoting from a workstation, by an
  account that does not normally administer the target, or followed by discovery and credential tooling.
attack:
  techniques: [T1021.006, T1059.001]
  tactics: [lateral-movement, execution]
severity: medium
window: none
entity: host
response:
  - "Identify both ends: for a target-side alert find the 4624 logon (type 3) on the host at that time and its source IpAddress/WorkstationName; for a source-side alert read the -ComputerName / -Session target from the command line."
  - Confirm with the account owner or change record whether this remoting session was planned administration; treat an unexplained session from a workstation or by a non-admin account as an intrusion.
  - Pull every child of the same wsmprovhost.exe (Sysmon ParentProcessGuid) and the PowerShell 4104 script-block log on the target to see exactly what ran remotely.
  - Scope the account - list its other logons (4624/4648) and remoting sessions in the last 7 days to find further hops.
  - If malicious, disable or reset the account, isolate both hosts, and restrict WinRM (TCP 5985/5986) to admin jump hosts.
references:
  - https://attack.mitre.org/techniques/T1021/006/
  - https://learn.microsoft.com/en-us/powershell/scripting/security/remoting/winrm-security
*/
SELECT
  event_time,
  host,
  CASE
    WHEN ends_with(lower(parent_image), '\wsmprovhost.exe') THEN 'target'
    ELSE 'source'
  END AS side,
  coalesce(user, subject_user_name) AS user,
  image,
  command_line,
  parent_image,
  parent_command_line
FROM events
WHERE (
    (lower(channel) = 'microsoft-windows-sysmon/operational' AND event_id = 1)
    OR (lower(channel) = 'security' AND event_id = 4688)
  )
  AND (
    -- target side: whatever runs inside a remote PowerShell session
    ends_with(lower(parent_image), '\wsmprovhost.exe')
    -- source side: PowerShell opening a remote session or running a command on another computer
    OR (
      (ends_with(lower(image), '\powershell.exe') OR ends_with(lower(image), '\pwsh.exe'))
      AND (
        ends_with(lower(parent_image), '\explorer.exe')
        OR ends_with(lower(parent_image), '\svchost.exe')
        OR ends_with(lower(parent_image), '\wsmprovhost.exe')
      )
      AND regexp_like(command_line, 'invoke-command|enter-pssession|new-pssession|-computername', 'i')
    )
  )
