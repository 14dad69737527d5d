//! Background noise: Sysmon 1 process starts of browsers, services, consoles, scripts, Office, admin tools,
//! sync clients and system task hosts.

use rand::Rng;

use super::EventGenerator;
use super::catalog::{
    BGTASKHOST, CHROME, CMD, CONHOST, DOC_NAMES, EXCEL, EXPLORER, EXPLORER_CMD, IPCONFIG, MSEDGE,
    NET, ONEDRIVE, OUTLOOK, PING, POWERPNT, POWERSHELL, SEARCHINDEXER, SEARCHPROTOCOLHOST,
    SERVICES, SVCHOST, TASKHOSTW, TASKLIST, TEAMS, WINWORD,
};
use super::domain::{Role, Who};
use super::events::{Ch, Spawn};

impl EventGenerator {
    /// Sysmon 1: an ordinary process start.
    pub(super) fn noise_process(&mut self, out: &mut Vec<u8>, t: i64) {
        let spawn = match self.rng.random_range(0..100u32) {
            0..37 => {
                let h = self.workstation();
                let u = self.hosts[h].user;
                let (exe, browser_cmd) = if self.rng.random_bool(0.67) {
                    (
                        &CHROME,
                        r#""C:\Program Files\Google\Chrome\Application\chrome.exe""#,
                    )
                } else {
                    (
                        &MSEDGE,
                        r#""C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe""#,
                    )
                };
                let renderer = self.rng.random_bool(0.7);
                let cmd = if renderer {
                    format!(
                        "{browser_cmd} --type=renderer --lang=en-US --device-scale-factor=1 \
                         --num-raster-threads=4 --renderer-client-id={} --launch-time-ticks={} \
                         --field-trial-handle=1960,i,{},{},262144 /prefetch:1",
                        self.rng.random_range(5..400u32),
                        self.rng.random_range(10_000_000..9_000_000_000u64),
                        self.rng.random::<u64>(),
                        self.rng.random::<u64>()
                    )
                } else {
                    format!(
                        "{browser_cmd} --type=utility --utility-sub-type=network.mojom.NetworkService \
                         --lang=en-US --service-sandbox-type=none --field-trial-handle=1960,i,{},{},262144 \
                         /prefetch:11",
                        self.rng.random::<u64>(),
                        self.rng.random::<u64>()
                    )
                };
                Spawn {
                    host: h,
                    image: exe.path.into(),
                    original: exe.original,
                    cmd: cmd.into(),
                    who: Who::User(u),
                    integrity: if renderer { "Low" } else { "Medium" },
                    session: 1,
                    parent_image: exe.path.into(),
                    parent_cmd: browser_cmd.into(),
                    parent_who: Who::User(u),
                    hash_seed: None,
                }
            }
            37..52 => {
                let h = self.host();
                let (group, svc, who) = self.pick(&[
                    ("netsvcs", "BITS", Who::System),
                    ("netsvcs", "Schedule", Who::System),
                    ("netsvcs", "gpsvc", Who::System),
                    ("wusvcs", "wuauserv", Who::System),
                    ("LocalServiceNetworkRestricted", "Dhcp", Who::LocalService),
                    ("LocalService", "W32Time", Who::LocalService),
                    ("NetworkService", "Dnscache", Who::NetworkService),
                    ("NetworkService", "CryptSvc", Who::NetworkService),
                ]);
                Spawn {
                    host: h,
                    image: SVCHOST.path.into(),
                    original: SVCHOST.original,
                    cmd: format!(r"C:\Windows\system32\svchost.exe -k {group} -p -s {svc}").into(),
                    who,
                    integrity: "System",
                    session: 0,
                    parent_image: SERVICES.path.into(),
                    parent_cmd: r"C:\Windows\system32\services.exe".into(),
                    parent_who: Who::System,
                    hash_seed: None,
                }
            }
            52..62 => {
                let h = self.host();
                let who = if self.hosts[h].role == Role::Workstation && self.rng.random_bool(0.6) {
                    Who::User(self.hosts[h].user)
                } else {
                    Who::System
                };
                let (parent, parent_cmd) = if self.rng.random_bool(0.5) {
                    (
                        &CMD,
                        r#"C:\Windows\system32\cmd.exe /c "C:\Scripts\nightly.cmd""#,
                    )
                } else {
                    (
                        &POWERSHELL,
                        r"powershell.exe -NoProfile -File C:\Scripts\backup.ps1",
                    )
                };
                Spawn {
                    host: h,
                    image: CONHOST.path.into(),
                    original: CONHOST.original,
                    cmd: r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1".into(),
                    who,
                    integrity: if matches!(who, Who::System) {
                        "System"
                    } else {
                        "Medium"
                    },
                    session: if matches!(who, Who::System) { 0 } else { 1 },
                    parent_image: parent.path.into(),
                    parent_cmd: parent_cmd.into(),
                    parent_who: who,
                    hash_seed: None,
                }
            }
            62..68 => {
                if self.rng.random_bool(0.4) {
                    let h = self.workstation();
                    let u = self.hosts[h].user;
                    Spawn {
                        host: h,
                        image: POWERSHELL.path.into(),
                        original: POWERSHELL.original,
                        cmd: r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe""#
                            .into(),
                        who: Who::User(u),
                        integrity: "Medium",
                        session: 1,
                        parent_image: EXPLORER.path.into(),
                        parent_cmd: EXPLORER_CMD.into(),
                        parent_who: Who::User(u),
                        hash_seed: None,
                    }
                } else {
                    let h = self.host();
                    let cmd = self.pick(&[
                        r"powershell.exe -NoProfile -File C:\Scripts\backup.ps1",
                        r"powershell.exe -NoProfile -NonInteractive -File C:\Scripts\Rotate-Logs.ps1",
                        r#"powershell.exe -NoLogo -NoProfile -File "C:\Program Files\Contoso\Agent\healthcheck.ps1""#,
                        r#"powershell.exe -NoProfile -Command "Get-PSDrive -PSProvider FileSystem | Out-File C:\Scripts\Logs\disk.txt""#,
                    ]);
                    Spawn {
                        host: h,
                        image: POWERSHELL.path.into(),
                        original: POWERSHELL.original,
                        cmd: cmd.into(),
                        who: Who::System,
                        integrity: "System",
                        session: 0,
                        parent_image: SVCHOST.path.into(),
                        parent_cmd: r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule"
                            .into(),
                        parent_who: Who::System,
                        hash_seed: None,
                    }
                }
            }
            68..76 => {
                let h = self.workstation();
                let u = self.hosts[h].user;
                let (exe, ext) = self.pick(&[
                    (&WINWORD, "docx"),
                    (&EXCEL, "xlsx"),
                    (&POWERPNT, "pptx"),
                    (&OUTLOOK, ""),
                ]);
                let cmd = if ext.is_empty() {
                    format!("\"{}\"", exe.path)
                } else {
                    let doc = self.pick(&DOC_NAMES);
                    let folder = self.pick(&["Documents", "Downloads", "Desktop"]);
                    format!(
                        r#""{}" /n "{}\{folder}\{doc}.{ext}" /o """#,
                        exe.path, self.users[u].profile
                    )
                };
                Spawn {
                    host: h,
                    image: exe.path.into(),
                    original: exe.original,
                    cmd: cmd.into(),
                    who: Who::User(u),
                    integrity: "Medium",
                    session: 1,
                    parent_image: EXPLORER.path.into(),
                    parent_cmd: EXPLORER_CMD.into(),
                    parent_who: Who::User(u),
                    hash_seed: None,
                }
            }
            76..80 => {
                let h = self.workstation();
                let u = self.hosts[h].user;
                Spawn {
                    host: h,
                    image: CMD.path.into(),
                    original: CMD.original,
                    cmd: r#""C:\Windows\system32\cmd.exe""#.into(),
                    who: Who::User(u),
                    integrity: "Medium",
                    session: 1,
                    parent_image: EXPLORER.path.into(),
                    parent_cmd: EXPLORER_CMD.into(),
                    parent_who: Who::User(u),
                    hash_seed: None,
                }
            }
            80..84 => {
                let h = self.workstation();
                let u = self.hosts[h].user;
                let srv = self.server();
                let srv_name = &self.hosts[srv].short;
                let (exe, cmd) = match self.rng.random_range(0..4u32) {
                    0 => (&IPCONFIG, "ipconfig  /all".to_string()),
                    1 => (&PING, format!("ping  -n 4 {srv_name}")),
                    2 => (&NET, format!(r"net  use Z: \\{srv_name}\shared")),
                    _ => (&TASKLIST, "tasklist".to_string()),
                };
                Spawn {
                    host: h,
                    image: exe.path.into(),
                    original: exe.original,
                    cmd: cmd.into(),
                    who: Who::User(u),
                    integrity: "Medium",
                    session: 1,
                    parent_image: CMD.path.into(),
                    parent_cmd: r#""C:\Windows\system32\cmd.exe""#.into(),
                    parent_who: Who::User(u),
                    hash_seed: None,
                }
            }
            84..90 => {
                let h = self.workstation();
                let u = self.hosts[h].user;
                let (exe, cmd) = if self.rng.random_bool(0.5) {
                    (
                        &ONEDRIVE,
                        r#""C:\Program Files\Microsoft OneDrive\OneDrive.exe" /background"#,
                    )
                } else {
                    (
                        &TEAMS,
                        r#""C:\Program Files\WindowsApps\MSTeams_24295.605.3225.8804_x64__8wekyb3d8bbwe\ms-teams.exe" msteams:system-initiated"#,
                    )
                };
                Spawn {
                    host: h,
                    image: exe.path.into(),
                    original: exe.original,
                    cmd: cmd.into(),
                    who: Who::User(u),
                    integrity: "Medium",
                    session: 1,
                    parent_image: EXPLORER.path.into(),
                    parent_cmd: EXPLORER_CMD.into(),
                    parent_who: Who::User(u),
                    hash_seed: None,
                }
            }
            _ => {
                let h = self.host();
                let (exe, cmd, parent, parent_cmd) = self.pick(&[
                    (
                        &TASKHOSTW,
                        "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly",
                        &SVCHOST,
                        r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule",
                    ),
                    (
                        &BGTASKHOST,
                        r#""C:\Windows\system32\backgroundTaskHost.exe" -ServerName:BackgroundTaskHost.WebAccountProvider"#,
                        &SVCHOST,
                        r"C:\Windows\system32\svchost.exe -k DcomLaunch -p",
                    ),
                    (
                        &SEARCHPROTOCOLHOST,
                        r#""C:\Windows\system32\SearchProtocolHost.exe" Global\UsGthrFltPipeMssGthrPipe7_ Global\UsGthrCtrlFltPipeMssGthrPipe7 1 -2147483646 "Software\Microsoft\Windows Search" "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT; MS Search 4.0 Robot)" "C:\ProgramData\Microsoft\Search\Data\Temp\usgthrsvc" "DownLevelDaemon""#,
                        &SEARCHINDEXER,
                        r"C:\Windows\system32\SearchIndexer.exe /Embedding",
                    ),
                ]);
                Spawn {
                    host: h,
                    image: exe.path.into(),
                    original: exe.original,
                    cmd: cmd.into(),
                    who: Who::System,
                    integrity: "System",
                    session: 0,
                    parent_image: parent.path.into(),
                    parent_cmd: parent_cmd.into(),
                    parent_who: Who::System,
                    hash_seed: None,
                }
            }
        };
        let ids = self.ids(spawn.host);
        self.begin(out, t, 1, Ch::Sysmon, spawn.host);
        self.write_spawn(out, &spawn, &ids);
    }
}
