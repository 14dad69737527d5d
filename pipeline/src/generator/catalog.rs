//! Constant tables: the modelled domain's names, the programs its hosts run (image paths and PE original
//! file names), and the pools user names, servers, documents, web sites and attacker domains are drawn from.

/// NetBIOS name of the modelled domain.
pub(super) const DOMAIN: &str = "CORP";
/// DNS suffix of every modelled host.
pub(super) const DNS_SUFFIX: &str = ".corp.example";
/// SID prefix of the modelled domain; account SIDs append a RID.
pub(super) const DOMAIN_SID: &str = "S-1-5-21-3623811015-3361044348-30300820";

/// The lsass.exe image path, as Sysmon writes it.
pub(super) const LSASS: &str = r"C:\Windows\system32\lsass.exe";
/// Command line of explorer.exe, the parent of interactively started programs.
pub(super) const EXPLORER_CMD: &str = r"C:\Windows\Explorer.EXE";
/// Command line of wsmprovhost.exe, the WinRM plug-in host that runs remote PowerShell sessions.
pub(super) const WSMPROVHOST_CMD: &str = r"C:\Windows\system32\wsmprovhost.exe -Embedding";

/// A program's image path and PE original file name.
pub(super) struct Exe {
    /// Full image path.
    pub(super) path: &'static str,
    /// PE `OriginalFileName`.
    pub(super) original: &'static str,
}

/// Windows PowerShell.
pub(super) const POWERSHELL: Exe = Exe {
    path: r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    original: "PowerShell.EXE",
};
/// The command interpreter.
pub(super) const CMD: Exe = Exe {
    path: r"C:\Windows\System32\cmd.exe",
    original: "Cmd.Exe",
};
/// The Windows shell.
pub(super) const EXPLORER: Exe = Exe {
    path: r"C:\Windows\explorer.exe",
    original: "EXPLORER.EXE",
};
/// The service host.
pub(super) const SVCHOST: Exe = Exe {
    path: r"C:\Windows\System32\svchost.exe",
    original: "svchost.exe",
};
/// The service control manager.
pub(super) const SERVICES: Exe = Exe {
    path: r"C:\Windows\System32\services.exe",
    original: "services.exe",
};
/// The console host.
pub(super) const CONHOST: Exe = Exe {
    path: r"C:\Windows\System32\conhost.exe",
    original: "CONHOST.EXE",
};
/// Google Chrome.
pub(super) const CHROME: Exe = Exe {
    path: r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    original: "chrome.exe",
};
/// Microsoft Edge.
pub(super) const MSEDGE: Exe = Exe {
    path: r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
    original: "msedge.exe",
};
/// Word.
pub(super) const WINWORD: Exe = Exe {
    path: r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
    original: "WinWord.exe",
};
/// Excel.
pub(super) const EXCEL: Exe = Exe {
    path: r"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE",
    original: "Excel.exe",
};
/// Outlook.
pub(super) const OUTLOOK: Exe = Exe {
    path: r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
    original: "Outlook.exe",
};
/// PowerPoint.
pub(super) const POWERPNT: Exe = Exe {
    path: r"C:\Program Files\Microsoft Office\root\Office16\POWERPNT.EXE",
    original: "POWERPNT.EXE",
};
/// The WinRM plug-in host.
pub(super) const WSMPROVHOST: Exe = Exe {
    path: r"C:\Windows\System32\wsmprovhost.exe",
    original: "wsmprovhost.exe",
};
/// whoami.
pub(super) const WHOAMI: Exe = Exe {
    path: r"C:\Windows\System32\whoami.exe",
    original: "whoami.exe",
};
/// Windows Script Host.
pub(super) const WSCRIPT: Exe = Exe {
    path: r"C:\Windows\System32\wscript.exe",
    original: "wscript.exe",
};
/// HTML application host.
pub(super) const MSHTA: Exe = Exe {
    path: r"C:\Windows\System32\mshta.exe",
    original: "MSHTA.EXE",
};
/// rundll32.
pub(super) const RUNDLL32: Exe = Exe {
    path: r"C:\Windows\System32\rundll32.exe",
    original: "RUNDLL32.EXE",
};
/// The WMI provider host.
pub(super) const WMIPRVSE: Exe = Exe {
    path: r"C:\Windows\system32\wbem\wmiprvse.exe",
    original: "Wmiprvse.exe",
};
/// The Defender engine.
pub(super) const MSMPENG: Exe = Exe {
    path: r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MsMpEng.exe",
    original: "MsMpEng.exe",
};
/// Task host.
pub(super) const TASKHOSTW: Exe = Exe {
    path: r"C:\Windows\System32\taskhostw.exe",
    original: "taskhostw.exe",
};
/// Background task host.
pub(super) const BGTASKHOST: Exe = Exe {
    path: r"C:\Windows\System32\backgroundTaskHost.exe",
    original: "backgroundTaskHost.exe",
};
/// Search protocol host.
pub(super) const SEARCHPROTOCOLHOST: Exe = Exe {
    path: r"C:\Windows\System32\SearchProtocolHost.exe",
    original: "SearchProtocolHost.exe",
};
/// Search indexer.
pub(super) const SEARCHINDEXER: Exe = Exe {
    path: r"C:\Windows\System32\SearchIndexer.exe",
    original: "SearchIndexer.exe",
};
/// OneDrive (per-machine install).
pub(super) const ONEDRIVE: Exe = Exe {
    path: r"C:\Program Files\Microsoft OneDrive\OneDrive.exe",
    original: "OneDrive.exe",
};
/// Teams.
pub(super) const TEAMS: Exe = Exe {
    path: r"C:\Program Files\WindowsApps\MSTeams_24295.605.3225.8804_x64__8wekyb3d8bbwe\ms-teams.exe",
    original: "ms-teams.exe",
};
/// ipconfig.
pub(super) const IPCONFIG: Exe = Exe {
    path: r"C:\Windows\System32\ipconfig.exe",
    original: "ipconfig.exe",
};
/// ping.
pub(super) const PING: Exe = Exe {
    path: r"C:\Windows\System32\PING.EXE",
    original: "ping.exe",
};
/// net.
pub(super) const NET: Exe = Exe {
    path: r"C:\Windows\System32\net.exe",
    original: "net.exe",
};
/// tasklist.
pub(super) const TASKLIST: Exe = Exe {
    path: r"C:\Windows\System32\tasklist.exe",
    original: "tasklist.exe",
};

/// First names for user accounts (lowercase).
pub(super) const FIRST_NAMES: [&str; 64] = [
    "alice",
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "chris",
    "lisa",
    "daniel",
    "nancy",
    "matthew",
    "betty",
    "anthony",
    "margaret",
    "mark",
    "sandra",
    "donald",
    "ashley",
    "steven",
    "kim",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "kenneth",
    "carol",
    "kevin",
    "amanda",
    "brian",
    "dorothy",
    "george",
    "melissa",
    "timothy",
    "deborah",
    "ronald",
    "stephanie",
    "edward",
    "rebecca",
    "jason",
    "sharon",
    "jeffrey",
    "laura",
    "ryan",
    "cynthia",
    "jacob",
    "omar",
    "priya",
];
/// Last names for user accounts (lowercase).
pub(super) const LAST_NAMES: [&str; 64] = [
    "kim",
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "patel",
    "chen",
    "singh",
    "muller",
    "novak",
    "rossi",
    "dubois",
    "silva",
    "tanaka",
    "ivanova",
    "okafor",
    "larsen",
    "kowalski",
];
/// Account names a sprayer tries that do not exist in the domain (no dots, so never a real user name).
pub(super) const SPRAY_GUESSES: [&str; 28] = [
    "admin",
    "test",
    "guest1",
    "backup",
    "scanner",
    "svc_backup",
    "sqladmin",
    "helpdesk",
    "training",
    "temp",
    "user1",
    "support",
    "webadmin",
    "ftpuser",
    "oracle",
    "postgres",
    "jenkins",
    "ansible",
    "vagrant",
    "kiosk",
    "printer",
    "reception",
    "intern",
    "demo",
    "itadmin",
    "svc_sql",
    "test01",
    "sysadmin",
];
/// Server roles in the order servers are added, with their number.
pub(super) const SERVER_NAMES: [&str; 10] = [
    "SRV-DC01",
    "SRV-FILE01",
    "SRV-DC02",
    "SRV-SQL01",
    "SRV-WEB01",
    "SRV-APP01",
    "SRV-EXCH01",
    "SRV-FILE02",
    "SRV-SQL02",
    "SRV-APP02",
];
/// Public address prefixes used for web traffic.
pub(super) const PUBLIC_NETS: [&str; 8] = [
    "142.250", "172.217", "13.107", "20.190", "52.96", "151.101", "104.16", "40.126",
];
/// Public names resolved by ordinary traffic.
pub(super) const PUBLIC_NAMES: [&str; 20] = [
    "www.google.com",
    "login.microsoftonline.com",
    "outlook.office365.com",
    "teams.microsoft.com",
    "www.bing.com",
    "update.googleapis.com",
    "clients2.google.com",
    "fonts.gstatic.com",
    "settings-win.data.microsoft.com",
    "v10.events.data.microsoft.com",
    "ctldl.windowsupdate.com",
    "officeclient.microsoft.com",
    "graph.microsoft.com",
    "github.com",
    "www.wikipedia.org",
    "cdn.jsdelivr.net",
    "oneclient.sfx.ms",
    "edge.microsoft.com",
    "wdcp.microsoft.com",
    "go.microsoft.com",
];
/// Document names for Office noise.
pub(super) const DOC_NAMES: [&str; 10] = [
    "Q3 report",
    "Budget 2027",
    "Meeting notes",
    "Project plan",
    "Onboarding checklist",
    "Sales forecast",
    "Travel expenses",
    "Team roster",
    "Release notes",
    "Vendor contract",
];
/// Attacker-controlled domains for download cradles.
pub(super) const EVIL_DOMAINS: [&str; 6] = [
    "cdn-update.net",
    "files-share.io",
    "msupdate-cdn.com",
    "static-content.org",
    "docs-viewer.info",
    "sync-cloud.biz",
];
