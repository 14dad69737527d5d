/*
id: privileged_group_member_added
title: Member added to a privileged group
description: >
  Security 4728 (global group), 4732 (local or domain-local group) or 4756 (universal group) where the group
  (TargetUserName) is a built-in or well-known privileged group - Administrators, Domain/Enterprise/Schema
  Admins, the Backup/Account/Server/Print Operators, Remote Desktop and Remote Management Users, DnsAdmins,
  Group Policy Creator Owners, (Enterprise) Key Admins, Hyper-V Administrators and the Exchange groups that
  grant domain-level rights. Group names are compared case-insensitively and exactly, so "Helpdesk Admins" or
  "Domain Users" do not match. English group names only: the schema has no group SID column yet.
hypothesis: >
  After gaining a foothold, an attacker grants an account they control lasting privileges - a new or existing
  user added to Domain Admins or the local Administrators group, to Remote Desktop Users for interactive access,
  to Backup Operators or DnsAdmins for an indirect path to the domain controller, or to Exchange Windows
  Permissions for DCSync rights. Such changes are rare and normally go through a ticketed change.
attack:
  techniques: [T1098.007]
  tactics: [persistence, privilege-escalation]
severity: high
window: none
entity: member_sid
response:
  - Match the change to an approved ticket or admin workflow; an unexplained addition is an intrusion until proven otherwise.
  - Check who made it (subject_user_name) - where that account logged on from (4624 on the DC/host around event_time) and whether it is itself compromised.
  - Review the added member (member_name / member_sid) - when it was created (4720), its recent logons, and whether it is a normal user, a service account or a new account.
  - If unauthorised, remove the member from the group, reset the passwords of the member and the subject, and end their sessions so tickets issued with the new group membership are no longer used.
  - Search for other group, ACL (5136) and GPO changes by the same subject in the same period.
references:
  - https://attack.mitre.org/techniques/T1098/007/
  - https://learn.microsoft.com/en-us/windows-server/identity/ad-ds/plan/security-best-practices/appendix-b--privileged-accounts-and-groups-in-active-directory
*/
SELECT
  event_time,
  host,
  event_id,
  CASE event_id
    WHEN 4728 THEN 'global'
    WHEN 4732 THEN 'local'
    WHEN 4756 THEN 'universal'
  END AS group_scope,
  target_domain_name,
  target_user_name AS group_name,
  member_name,
  member_sid,
  subject_domain_name,
  subject_user_name
FROM events
WHERE lower(channel) = 'security'
  AND event_id IN (4728, 4732, 4756)
  AND lower(target_user_name) IN (
    'administrators',
    'domain admins',
    'enterprise admins',
    'schema admins',
    'backup operators',
    'account operators',
    'server operators',
    'print operators',
    'remote desktop users',
    'remote management users',
    'dnsadmins',
    'group policy creator owners',
    'key admins',
    'enterprise key admins',
    'hyper-v administrators',
    'exchange windows permissions',
    'exchange trusted subsystem',
    'organization management'
  )
