/*
id: new_local_admin_via_net
title: Account added to a privileged group with net.exe
description: >
  net.exe or net1.exe (also renamed, by PE original file name) run with "localgroup" or "group" naming a
  privileged group - Administrators, Domain/Enterprise/Schema Admins, Remote Desktop / Remote Management
  Users, Backup/Account/Server Operators, DnsAdmins - and /add. The net1.exe that net.exe spawns for the same
  command is skipped so one command gives one alert; net1.exe run directly still alerts. Listing a group or
  /delete does not match. Sysmon event 1 and Security 4688. Complements privileged_group_member_added on hosts
  without Security group-management auditing, and shows the command and parent process.
hypothesis: >
  An attacker with administrative rights makes their access durable by adding an account they control (often
  one just created with net user /add) to the local Administrators or Remote Desktop Users group, or to Domain
  Admins with net group /domain. The built-in net command is the most common way to do it in scripts,
  implants and hands-on-keyboard sessions.
attack:
  techniques: [T1098.007]
  tactics: [persistence, privilege-escalation]
severity: high
window: none
entity: host
response:
  - Identify the account that was added (from command_line) and the user and parent process that ran the command; confirm with the change process whether it was planned.
  - Check whether the added account was created just before (net user /add, 4720) and where it has logged on since (4624 types 3/10).
  - Walk the parent process tree (Sysmon ParentProcessGuid) to find the session or implant that issued the command.
  - Remove the account from the group (and disable it if it is new), then reset the credentials of the user that ran the command.
  - Search all hosts for the same command line or added account name - scripted persistence is usually spread.
references:
  - https://attack.mitre.org/techniques/T1098/007/
  - https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2012-r2-and-2012/cc725622(v=ws.11)
*/
SELECT
  event_time,
  host,
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
    regexp_like(image, '\\net1?\.exe$', 'i')
    OR lower(coalesce(original_file_name, '')) IN ('net.exe', 'net1.exe')
  )
  -- net.exe re-runs the same command as its child net1.exe: alert once, on net.exe
  AND NOT (
    regexp_like(image, '\\net1\.exe$', 'i')
    AND coalesce(regexp_like(parent_image, '\\net\.exe$', 'i'), false)
  )
  AND regexp_like(
    command_line,
    '\s(local)?group\s+"?(administrators|domain admins|enterprise admins|schema admins|remote desktop users|remote management users|backup operators|account operators|server operators|dnsadmins)"?\s.*[/-]add\b',
    'i'
  )
