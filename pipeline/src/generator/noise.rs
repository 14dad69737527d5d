//! Background noise: one ordinary event per call, in realistic proportions (process starts are in
//! `noise_process`), none of them matching the hunt logic of any scenario.

use std::borrow::Cow;

use rand::Rng;

use super::catalog::{
    CHROME, DOC_NAMES, DOMAIN, LSASS, MSEDGE, MSMPENG, ONEDRIVE, OUTLOOK, PUBLIC_NAMES, SVCHOST,
    TEAMS, WINWORD, WMIPRVSE,
};
use super::domain::{Role, Who};
use super::events::{
    Access, Ch, Conn, Failure, Logon, write_access, write_failure, write_logon, write_service,
};
use super::json::{key, kv, kv_guid, kv_num, kv_plain, push_guid};
use super::{EventGenerator, TYPO_GAP_MS, TYPO_GLOBAL_GAP_MS};

impl EventGenerator {
    /// Writes one noise event (header and data fields, not the closing brace) at `t`.
    pub(super) fn noise(&mut self, out: &mut Vec<u8>, t: i64) {
        match self.rng.random_range(0..10_000u32) {
            0..2000 => self.noise_process(out, t),
            2000..4400 => self.noise_network(out, t),
            4400..6000 => self.noise_dns(out, t),
            6000..7300 => self.noise_file(out, t),
            7300..7800 => self.noise_lsass_read(out, t),
            7800..9300 => self.noise_logon(out, t),
            9300..9360 => self.noise_failed_logon(out, t),
            9360..9995 => self.noise_script_block(out, t),
            _ => self.noise_service(out, t),
        }
    }

    /// Sysmon 3: web (443, 80), SMB (445) and DNS (53) connections.
    fn noise_network(&mut self, out: &mut Vec<u8>, t: i64) {
        let (h, image, who, udp, dst_ip, dst_host, dst_port, port_name): (
            usize,
            &str,
            Who,
            bool,
            String,
            Cow<'_, str>,
            u16,
            &str,
        );
        match self.rng.random_range(0..100u32) {
            0..60 => {
                h = self.workstation();
                let exe = self.pick(&[&CHROME, &CHROME, &MSEDGE, &ONEDRIVE, &TEAMS, &OUTLOOK]);
                image = exe.path;
                who = Who::User(self.hosts[h].user);
                udp = false;
                dst_ip = self.public_ip();
                dst_host = if self.rng.random_bool(0.4) {
                    self.pick(&PUBLIC_NAMES).into()
                } else {
                    "-".into()
                };
                dst_port = 443;
                port_name = "https";
            }
            60..70 => {
                h = self.host();
                image = SVCHOST.path;
                who = Who::NetworkService;
                udp = false;
                dst_ip = self.public_ip();
                dst_host = "-".into();
                dst_port = 80;
                port_name = "http";
            }
            70..85 => {
                h = self.workstation();
                let srv = if self.rng.random_bool(0.5) {
                    self.server()
                } else {
                    self.dc()
                };
                image = "System";
                who = Who::System;
                udp = false;
                dst_ip = self.hosts[srv].ip.clone();
                dst_host = self.hosts[srv].fqdn.clone().into();
                dst_port = 445;
                port_name = "microsoft-ds";
            }
            _ => {
                h = self.host();
                let dc = self.dc();
                image = SVCHOST.path;
                who = Who::NetworkService;
                udp = true;
                dst_ip = self.hosts[dc].ip.clone();
                dst_host = self.hosts[dc].fqdn.clone().into();
                dst_port = 53;
                port_name = "domain";
            }
        }
        let guid = self.guid(h);
        // The kernel ("System", pid 4) makes SMB connections.
        let pid = if image == "System" { 4 } else { self.pid() };
        let src_port = self.port();
        self.begin(out, t, 3, Ch::Sysmon, h);
        let host = &self.hosts[h];
        let conn = Conn {
            guid,
            pid,
            image,
            who,
            udp,
            src_ip: &host.ip,
            src_host: &host.fqdn,
            src_port,
            dst_ip: &dst_ip,
            dst_host: &dst_host,
            dst_port,
            dst_port_name: port_name,
        };
        self.write_conn(out, &conn);
    }

    /// Sysmon 22: a DNS query by a browser, an Office app or the DNS client.
    fn noise_dns(&mut self, out: &mut Vec<u8>, t: i64) {
        let h = self.host();
        let (image, who) = if self.hosts[h].role == Role::Workstation && self.rng.random_bool(0.7) {
            let exe = self.pick(&[&CHROME, &MSEDGE, &ONEDRIVE, &TEAMS, &OUTLOOK]);
            (exe.path, Who::User(self.hosts[h].user))
        } else {
            (SVCHOST.path, Who::NetworkService)
        };
        let (name, ip): (Cow<'_, str>, String) = if self.rng.random_bool(0.2) {
            let srv = self.server();
            (
                self.hosts[srv].fqdn.clone().into(),
                self.hosts[srv].ip.clone(),
            )
        } else {
            (self.pick(&PUBLIC_NAMES).into(), self.public_ip())
        };
        let guid = self.guid(h);
        let pid = self.pid();
        self.begin(out, t, 22, Ch::Sysmon, h);
        kv_guid(out, "ProcessGuid", &guid);
        kv_num(out, "ProcessId", u64::from(pid));
        kv_plain(out, "QueryName", &name);
        kv_plain(out, "QueryStatus", "0");
        key(out, "QueryResults");
        out.extend_from_slice(b"\"::ffff:");
        out.extend_from_slice(ip.as_bytes());
        out.extend_from_slice(b";\"");
        kv(out, "Image", image);
        kv(out, "User", self.who_name(who));
    }

    /// Sysmon 11: a file created by a browser, Office, OneDrive or prefetch.
    fn noise_file(&mut self, out: &mut Vec<u8>, t: i64) {
        let h = self.workstation();
        let u = self.hosts[h].user;
        let doc = self.pick(&DOC_NAMES);
        let ext = self.pick(&["pdf", "docx", "xlsx", "zip"]);
        let variant = self.rng.random_range(0..5u32);
        let profile = &self.users[u].profile;
        let (image, who, path) = match variant {
            0 => (
                CHROME.path,
                Who::User(u),
                format!(
                    r"{profile}\AppData\Local\Google\Chrome\User Data\Default\Cache\Cache_Data\f_{:06x}",
                    self.rng.random_range(0..0x00ff_ffffu32)
                ),
            ),
            1 => (
                MSEDGE.path,
                Who::User(u),
                format!(r"{profile}\Downloads\{doc}.{ext}"),
            ),
            2 => (
                WINWORD.path,
                Who::User(u),
                format!(
                    r"{profile}\AppData\Roaming\Microsoft\Word\~WRL{:04}.tmp",
                    self.rng.random_range(0..10_000u32)
                ),
            ),
            3 => (
                ONEDRIVE.path,
                Who::User(u),
                format!(r"{profile}\OneDrive - Corp\Documents\{doc}.docx"),
            ),
            _ => {
                let exe = self.pick(&[
                    "CHROME.EXE",
                    "MSEDGE.EXE",
                    "SVCHOST.EXE",
                    "WINWORD.EXE",
                    "TEAMS.EXE",
                ]);
                (
                    SVCHOST.path,
                    Who::System,
                    format!(
                        r"C:\Windows\Prefetch\{exe}-{:08X}.pf",
                        self.rng.random::<u32>()
                    ),
                )
            }
        };
        let guid = self.guid(h);
        let pid = self.pid();
        self.begin(out, t, 11, Ch::Sysmon, h);
        kv_guid(out, "ProcessGuid", &guid);
        kv_num(out, "ProcessId", u64::from(pid));
        kv(out, "Image", image);
        kv(out, "TargetFilename", &path);
        key(out, "CreationUtcTime");
        out.push(b'"');
        self.clock.write(out, t, b' ');
        out.push(b'"');
        kv(out, "User", self.who_name(who));
    }

    /// Sysmon 10: Defender or WMI reading lsass with a benign mask (0x1000, 0x1400) and a module call trace.
    fn noise_lsass_read(&mut self, out: &mut Vec<u8>, t: i64) {
        let h = self.host();
        let defender = self.rng.random_bool(0.6);
        let granted = self.pick(&[0x1000u32, 0x1400]);
        let o: [u32; 4] = std::array::from_fn(|_| self.rng.random_range(0x1000..0xf_ffffu32));
        let (image, trace) = if defender {
            (
                MSMPENG.path,
                format!(
                    r"C:\Windows\SYSTEM32\ntdll.dll+{:x}|C:\Windows\System32\KERNELBASE.dll+{:x}|C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\mpengine.dll+{:x}|C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MpSvc.dll+{:x}",
                    o[0], o[1], o[2], o[3]
                ),
            )
        } else {
            (
                WMIPRVSE.path,
                format!(
                    r"C:\Windows\SYSTEM32\ntdll.dll+{:x}|C:\Windows\System32\KERNELBASE.dll+{:x}|c:\windows\system32\wbem\cimwin32.dll+{:x}|C:\Windows\SYSTEM32\framedynos.dll+{:x}",
                    o[0], o[1], o[2], o[3]
                ),
            )
        };
        let src_guid = self.guid(h);
        let src_pid = self.pid();
        let src_tid = self.pid();
        self.begin(out, t, 10, Ch::Sysmon, h);
        let host = &self.hosts[h];
        let access = Access {
            src_guid,
            src_pid,
            src_tid,
            src_image: image,
            src_user: r"NT AUTHORITY\SYSTEM",
            tgt_guid: host.lsass_guid,
            tgt_pid: host.lsass_pid,
            tgt_image: LSASS,
            granted,
            call_trace: &trace,
        };
        write_access(out, &access);
    }

    /// Security 4624: interactive (2), network (3) and remote interactive (10) logons.
    fn noise_logon(&mut self, out: &mut Vec<u8>, t: i64) {
        let r = self.rng.random_range(0..100u32);
        let target_logon_id = u64::from(self.rng.random_range(0x10_0000..0xfff_ffffu32));
        let port = self.port();
        if r < 70 {
            // Network logon on a server, by a user or a machine account, from a workstation.
            let ws = self.workstation();
            let srv = self.server();
            let machine =
                self.hosts[srv].role == Role::DomainController && self.rng.random_bool(0.4);
            let kerberos = self.rng.random_bool(0.8);
            let u = if self.rng.random_bool(0.8) {
                self.hosts[ws].user
            } else {
                self.user()
            };
            self.begin(out, t, 4624, Ch::Security, srv);
            let src = &self.hosts[ws];
            let (target_sid, target_user) = if machine {
                (src.machine_sid.as_str(), src.machine_account.as_str())
            } else {
                (self.users[u].sid.as_str(), self.users[u].name.as_str())
            };
            let logon = Logon {
                subject_sid: "S-1-0-0",
                subject_user: "-",
                subject_domain: "-",
                subject_logon_id: 0,
                target_sid,
                target_user,
                target_domain: DOMAIN,
                target_logon_id,
                logon_type: 3,
                logon_process: if kerberos { "Kerberos" } else { "NtLmSsp " },
                auth_package: if kerberos { "Kerberos" } else { "NTLM" },
                workstation: if kerberos { "-" } else { &src.short },
                lm_package: if kerberos { "-" } else { "NTLM V2" },
                key_length: if kerberos { 0 } else { 128 },
                process_id: 0,
                process_name: "-",
                ip: &src.ip,
                port,
                elevated: false,
            };
            write_logon(out, &logon);
        } else if r < 90 {
            // Interactive logon at a workstation.
            let ws = self.workstation();
            let u = self.hosts[ws].user;
            self.begin(out, t, 4624, Ch::Security, ws);
            let host = &self.hosts[ws];
            let user = &self.users[u];
            let logon = Logon {
                subject_sid: "S-1-5-18",
                subject_user: &host.machine_account,
                subject_domain: DOMAIN,
                subject_logon_id: 0x3e7,
                target_sid: &user.sid,
                target_user: &user.name,
                target_domain: DOMAIN,
                target_logon_id,
                logon_type: 2,
                logon_process: "User32 ",
                auth_package: "Negotiate",
                workstation: &host.short,
                lm_package: "-",
                key_length: 0,
                process_id: host.winlogon_pid(),
                process_name: r"C:\Windows\System32\winlogon.exe",
                ip: "127.0.0.1",
                port: 0,
                elevated: false,
            };
            write_logon(out, &logon);
        } else {
            // RDP to a server from a workstation.
            let ws = self.workstation();
            let srv = self.server();
            let u = self.hosts[ws].user;
            self.begin(out, t, 4624, Ch::Security, srv);
            let host = &self.hosts[srv];
            let src = &self.hosts[ws];
            let user = &self.users[u];
            let logon = Logon {
                subject_sid: "S-1-5-18",
                subject_user: &host.machine_account,
                subject_domain: DOMAIN,
                subject_logon_id: 0x3e7,
                target_sid: &user.sid,
                target_user: &user.name,
                target_domain: DOMAIN,
                target_logon_id,
                logon_type: 10,
                logon_process: "User32 ",
                auth_package: "Negotiate",
                workstation: &host.short,
                lm_package: "-",
                key_length: 0,
                process_id: host.winlogon_pid(),
                process_name: r"C:\Windows\System32\winlogon.exe",
                ip: &src.ip,
                port,
                elevated: true,
            };
            write_logon(out, &logon);
        }
    }

    /// Security 4625: a single mistyped password, rate-limited per source, user and host (at most one
    /// in any five minutes each, and one a minute overall); a 4624 when the limits say no.
    fn noise_failed_logon(&mut self, out: &mut Vec<u8>, t: i64) {
        let ws = self.workstation();
        let u = self.hosts[ws].user;
        let network = self.rng.random_bool(0.7);
        let (target_host, src_key) = if network {
            (self.server(), ws)
        } else {
            (ws, self.hosts.len())
        };
        let allowed = t - self.typo_any >= TYPO_GLOBAL_GAP_MS
            && t - self.typo_src[src_key] >= TYPO_GAP_MS
            && t - self.typo_user[u] >= TYPO_GAP_MS
            && t - self.typo_host[target_host] >= TYPO_GAP_MS;
        if !allowed {
            return self.noise_logon(out, t);
        }
        self.typo_any = t;
        self.typo_src[src_key] = t;
        self.typo_user[u] = t;
        self.typo_host[target_host] = t;
        let port = if network { self.port() } else { 0 };
        self.begin(out, t, 4625, Ch::Security, target_host);
        let src = &self.hosts[ws];
        let failure = if network {
            Failure {
                subject_sid: "S-1-0-0",
                subject_user: "-",
                subject_domain: "-",
                subject_logon_id: 0,
                target_user: &self.users[u].name,
                target_domain: DOMAIN,
                sub_status: "0xc000006a",
                logon_type: 3,
                logon_process: "NtLmSsp ",
                auth_package: "NTLM",
                workstation: &src.short,
                process_id: 0,
                process_name: "-",
                ip: &src.ip,
                port,
            }
        } else {
            Failure {
                subject_sid: "S-1-5-18",
                subject_user: &src.machine_account,
                subject_domain: DOMAIN,
                subject_logon_id: 0x3e7,
                target_user: &self.users[u].name,
                target_domain: DOMAIN,
                sub_status: "0xc000006a",
                logon_type: 2,
                logon_process: "User32 ",
                auth_package: "Negotiate",
                workstation: &src.short,
                process_id: src.winlogon_pid(),
                process_name: r"C:\Windows\System32\winlogon.exe",
                ip: "127.0.0.1",
                port,
            }
        };
        write_failure(out, &failure);
    }

    /// PowerShell 4104: a benign script block.
    fn noise_script_block(&mut self, out: &mut Vec<u8>, t: i64) {
        let h = self.host();
        let (text, path) = self.pick(&[
            (
                "Get-ChildItem -Path 'C:\\Scripts\\Logs' -Filter *.log | Where-Object { $_.LastWriteTime -lt (Get-Date).AddDays(-30) } | Remove-Item",
                "C:\\Scripts\\Rotate-Logs.ps1",
            ),
            ("{ Set-StrictMode -Version 1; $_.PSMessageDetails }", ""),
            ("{ Set-StrictMode -Version 1; $_.ErrorCategory_Message }", ""),
            ("{ Set-StrictMode -Version 1; $_.OriginInfo }", ""),
            (
                "\"PS $($executionContext.SessionState.Path.CurrentLocation)$('>' * ($nestedPromptLevel + 1)) \"",
                "",
            ),
            ("Import-Module ActiveDirectory", ""),
            ("Get-Service -Name Spooler | Select-Object Name, Status, StartType", ""),
            (
                "Compress-Archive -Path C:\\Data\\Reports -DestinationPath D:\\Backup\\reports.zip -Force",
                "C:\\Scripts\\backup.ps1",
            ),
            (
                "$free = (Get-PSDrive -PSProvider FileSystem | Measure-Object -Property Free -Sum).Sum\nWrite-Output \"Free: $free\"",
                "C:\\Program Files\\Contoso\\Agent\\healthcheck.ps1",
            ),
        ]);
        let id = self.guid(h);
        self.begin(out, t, 4104, Ch::PowerShell, h);
        kv_num(out, "MessageNumber", 1);
        kv_num(out, "MessageTotal", 1);
        kv(out, "ScriptBlockText", text);
        key(out, "ScriptBlockId");
        out.push(b'"');
        push_guid(out, &id);
        out.push(b'"');
        kv(out, "Path", path);
    }

    /// System 7045: a benign service installed from under `C:\Program Files\`.
    fn noise_service(&mut self, out: &mut Vec<u8>, t: i64) {
        let h = self.host();
        let (name, path, start) = self.pick(&[
            (
                "MozillaMaintenance",
                r#""C:\Program Files\Mozilla Maintenance Service\maintenanceservice.exe""#,
                "demand start",
            ),
            (
                "GoogleChromeElevationService",
                r#""C:\Program Files\Google\Chrome\Application\131.0.6778.86\elevation_service.exe""#,
                "demand start",
            ),
            ("uhssvc", r#""C:\Program Files\Microsoft Update Health Tools\uhssvc.exe""#, "auto start"),
            ("VMTools", r#""C:\Program Files\VMware\VMware Tools\vmtoolsd.exe""#, "auto start"),
            ("Splunkd", r#""C:\Program Files\SplunkUniversalForwarder\bin\splunkd.exe" service"#, "auto start"),
            ("ContosoAgent", r#""C:\Program Files\Contoso\Agent\contoso-agent.exe" --service"#, "auto start"),
        ]);
        self.begin(out, t, 7045, Ch::System, h);
        write_service(out, name, path, start);
    }
}
