//! Mapping tests: rules bound with the built-in mapping (variants, renames, channels, refusals, automatic
//! columns), and the bound `when` conditions checked on real-shaped events.

use serde_json::Value;

use super::tests::{base_names, column_value, eq, eval_when, holds, ls, path_finder, rule, schema};
use super::*;
use crate::sigma::ir::{Pattern, Test};

#[test]
fn process_creation_binds_sysmon_and_4688() {
    let m = Mapping::builtin();
    let s = schema();
    let base = base_names(&s);
    let detection = Expr::And(vec![
        eq("Image", "C:\\Windows\\System32\\cmd.exe"),
        eq("ProcessId", "508"),
        Expr::Not(Box::new(eq("CommandLine", "cmd.exe /c ver"))),
        Expr::Keyword {
            pattern: Pattern::literal("mimikatz"),
            cased: false,
        },
    ]);
    // No product: windows is the only product with process_creation.
    let bound = m
        .bind(
            &rule(ls(None, Some("process_creation"), None), detection.clone()),
            &base,
        )
        .unwrap();
    assert_eq!(
        bound.logsource,
        ls(Some("windows"), Some("process_creation"), None)
    );
    assert_eq!(bound.variants.len(), 2);
    let sysmon = &bound.variants[0];
    let sec = &bound.variants[1];
    assert_eq!(
        sysmon.when,
        Expr::And(vec![
            eq("channel", "Microsoft-Windows-Sysmon/Operational"),
            eq("event_id", "1")
        ])
    );
    assert_eq!(
        sec.when,
        Expr::And(vec![eq("channel", "Security"), eq("event_id", "4688")])
    );
    assert_eq!(
        sysmon.detection,
        Expr::And(vec![
            eq("image", "C:\\Windows\\System32\\cmd.exe"),
            eq("process_id_logged", "508"),
            Expr::Not(Box::new(eq("command_line", "cmd.exe /c ver"))),
            Expr::Keyword {
                pattern: Pattern::literal("mimikatz"),
                cased: false
            },
        ])
    );
    // 4688: ProcessId is NewProcessId (the integer column process_id). (A field 4688 never carries, such
    // as User, is unknown there: see tests_on_fields_a_variant_never_carries_are_unknown_there_not_false.)
    assert_eq!(
        sec.detection,
        Expr::And(vec![
            eq("image", "C:\\Windows\\System32\\cmd.exe"),
            eq("process_id", "508"),
            Expr::Not(Box::new(eq("command_line", "cmd.exe /c ver"))),
            Expr::Keyword {
                pattern: Pattern::literal("mimikatz"),
                cased: false
            },
        ])
    );
    assert_eq!(
        bound
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["process_id_logged"]
    );

    // On real-shaped events: the column bound to `Image` reads NewProcessName in a 4688 event and Image in
    // a Sysmon 1 event, and only the right variant's `when` holds for each.
    let ev4688: Value = serde_json::json!({"Event": {
        "System": {"EventID": 4688, "Channel": "Security", "Computer": "PC01.example.corp",
                   "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}},
        "EventData": {"SubjectUserName": "PC01$", "NewProcessId": "0x1fc",
                      "NewProcessName": "C:\\Windows\\System32\\cmd.exe", "ProcessId": "0x278",
                      "CommandLine": "cmd /c whoami", "ParentProcessName": "C:\\Windows\\explorer.exe"}}});
    let ev1: Value = serde_json::json!({"Event": {
        "System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "PC01"},
        "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "ProcessId": 4460,
                      "ParentImage": "C:\\Windows\\System32\\cmd.exe", "User": "PC01\\bob"}}});
    let paths = path_finder(&s, &bound);
    let image_col = |d: &Expr| match d {
        Expr::And(v) => match &v[0] {
            Expr::Field { field, .. } => field.clone(),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    assert_eq!(
        column_value(&ev4688, &paths(&image_col(&sec.detection))).as_deref(),
        Some("C:\\Windows\\System32\\cmd.exe")
    );
    assert_eq!(
        column_value(&ev1, &paths(&image_col(&sysmon.detection))).as_deref(),
        Some("C:\\Windows\\System32\\whoami.exe")
    );
    assert!(eval_when(&sec.when, &ev4688, &paths) && !eval_when(&sysmon.when, &ev4688, &paths));
    assert!(eval_when(&sysmon.when, &ev1, &paths) && !eval_when(&sec.when, &ev1, &paths));
    // The Sysmon variant's ProcessId reads the event's own ProcessId; in 4688 that is the creator, which
    // the 4688 variant does not use.
    assert_eq!(
        column_value(&ev1, &paths("process_id_logged")).as_deref(),
        Some("4460")
    );
    // ParentImage -> parent_image, which reads ParentProcessName in 4688.
    let parent = m
        .bind(
            &rule(
                ls(Some("windows"), Some("process_creation"), None),
                eq("ParentImage", "x"),
            ),
            &base,
        )
        .unwrap();
    assert_eq!(parent.variants[1].detection, eq("parent_image", "x"));
    assert_eq!(
        column_value(&ev4688, &paths("parent_image")).as_deref(),
        Some("C:\\Windows\\explorer.exe")
    );
}

#[test]
fn services_select_their_channel_only() {
    let m = Mapping::builtin();
    let s = schema();
    let security = ls(Some("windows"), None, Some("security"));
    let system = ls(Some("windows"), None, Some("system"));
    let ev_system: Value = serde_json::json!({"Event": {"System": {"EventID": {"#text": 7045, "#attributes": {"Qualifiers": 16384}}, "Channel": "System"},
                                              "EventData": {"ServiceName": "x"}}});
    let ev_security: Value = serde_json::json!({"Event": {"System": {"EventID": 4624, "Channel": "Security"}, "EventData": {}}});
    // Flat (OTRF) shape, with the lower-case channel some recordings have.
    let ev_flat_lower: Value = serde_json::json!({"EventID": 4688, "Channel": "security", "Hostname": "WORKSTATION5",
                                                  "NewProcessName": "C:\\Windows\\System32\\cmd.exe"});
    assert!(!holds(&m, &s, security.clone(), &ev_system));
    assert!(holds(&m, &s, system.clone(), &ev_system));
    assert!(holds(&m, &s, security.clone(), &ev_security));
    assert!(!holds(&m, &s, system, &ev_security));
    assert!(holds(&m, &s, security, &ev_flat_lower));
    assert!(holds(
        &m,
        &s,
        ls(Some("windows"), Some("process_creation"), None),
        &ev_flat_lower
    ));
    assert!(!holds(
        &m,
        &s,
        ls(Some("windows"), Some("ps_script"), None),
        &ev_flat_lower
    ));
    // product windows alone: every event, one variant whose `when` is True.
    let all = m
        .bind(
            &rule(ls(Some("windows"), None, None), Expr::True),
            &base_names(&s),
        )
        .unwrap();
    assert_eq!(
        all.variants,
        vec![BoundVariant {
            when: Expr::True,
            detection: Expr::True
        }]
    );
    // Lists of channels become an Or.
    let ps = m
        .bind(
            &rule(ls(Some("windows"), Some("ps_script"), None), Expr::True),
            &base_names(&s),
        )
        .unwrap();
    assert_eq!(
        ps.variants[0].when,
        Expr::And(vec![
            Expr::Or(vec![
                eq("channel", "Microsoft-Windows-PowerShell/Operational"),
                eq("channel", "PowerShellCore/Operational")
            ]),
            eq("event_id", "4104"),
        ])
    );
}

#[test]
fn unmapped_logsources_are_refused_precisely() {
    let m = Mapping::builtin();
    let s = schema();
    let base = base_names(&s);
    let err = m
        .bind(
            &rule(
                ls(Some("linux"), Some("process_creation"), None),
                Expr::True,
            ),
            &base,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("logsource product=linux category=process_creation is not mapped"),
        "{err}"
    );
    let err = m
        .bind(
            &rule(
                ls(Some("windows"), Some("process_creation"), Some("sysmon")),
                Expr::True,
            ),
            &base,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("product=windows category=process_creation service=sysmon"),
        "{err}"
    );
    let err = m
        .bind(&rule(ls(None, None, None), Expr::True), &base)
        .unwrap_err();
    assert!(err.to_string().contains("logsource is empty"), "{err}");
    // An empty field name in a detection is refused as the mapping's kind of problem (the refusal that
    // carries it names the rule).
    let err = m
        .bind(
            &rule(ls(Some("windows"), None, Some("system")), eq("", "x")),
            &base,
        )
        .unwrap_err();
    assert!(err.to_string().contains("empty field name"), "{err}");
    assert_eq!(err.kind(), crate::sigma::error::RefusalKind::Field);
    // Ambiguity when a product-less rule matches entries of several products.
    let two = Mapping::from_yaml(
        "default_paths: ['{field}']\nlogsources:\n  - logsource: {product: windows, category: process_creation}\n    variants: [{}]\n  - logsource: {product: linux, category: process_creation}\n    variants: [{}]\n",
        "two.yml",
    )
    .unwrap();
    let err = two
        .bind(
            &rule(ls(None, Some("process_creation"), None), Expr::True),
            &base,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("ambiguous") && err.to_string().contains("product=linux"),
        "{err}"
    );
}

#[test]
fn auto_columns_are_collected_once_and_fieldrefs_are_mapped() {
    let m = Mapping::builtin();
    let s = schema();
    let base = base_names(&s);
    let det = Expr::Or(vec![
        eq("ObjectType", "File"),
        eq("ObjectType", "Key"),
        Expr::Field {
            field: "User".into(),
            test: Test::FieldRef {
                other: "ParentUser".into(),
                position: crate::sigma::ir::Position::Equals,
                cased: false,
            },
        },
    ]);
    let bound = m
        .bind(
            &rule(ls(Some("windows"), None, Some("security")), det),
            &base,
        )
        .unwrap();
    assert_eq!(
        bound
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["object_type", "parent_user"]
    );
    let mut seen = Vec::new();
    bound.variants[0]
        .detection
        .visit_fields(&mut |f| seen.push(f.to_string()));
    assert_eq!(seen, ["object_type", "object_type", "user", "parent_user"]);
}

#[test]
fn file_delete_is_sysmon_23_and_file_delete_detected_is_26_as_the_taxonomy_says() {
    let m = Mapping::builtin();
    let s = schema();
    let sysmon = |id: u32| -> Value {
        serde_json::json!({"Event": {"System": {"EventID": id, "Channel": "Microsoft-Windows-Sysmon/Operational"},
                                     "EventData": {"Image": "C:\\Windows\\System32\\svchost.exe",
                                                   "TargetFilename": "C:\\Windows\\System32\\winevt\\Logs\\x.evtx"}}})
    };
    let delete = ls(Some("windows"), Some("file_delete"), None);
    let detected = ls(Some("windows"), Some("file_delete_detected"), None);
    assert!(holds(&m, &s, delete.clone(), &sysmon(23)));
    assert!(!holds(&m, &s, delete, &sysmon(26)));
    assert!(holds(&m, &s, detected.clone(), &sysmon(26)));
    assert!(!holds(&m, &s, detected, &sysmon(23)));
}

#[test]
fn tests_on_fields_a_variant_never_carries_are_unknown_there_not_false() {
    let m = Mapping::builtin();
    let s = schema();
    let base = base_names(&s);
    let process = || ls(Some("windows"), Some("process_creation"), None);
    let parent_is_self = Expr::Field {
        field: "Image".into(),
        test: Test::FieldRef {
            other: "ParentImage".into(),
            position: crate::sigma::ir::Position::Equals,
            cased: false,
        },
    };
    // `selection and not filter_on_OriginalFileName`: unknown under `not` on 4688 -> the variant is dropped;
    // the Sysmon variant keeps the whole rule.
    let sacrificial = Expr::And(vec![
        parent_is_self.clone(),
        Expr::Not(Box::new(eq("OriginalFileName", "Cmd.Exe"))),
    ]);
    let b = m
        .bind(&rule(process(), sacrificial.clone()), &base)
        .unwrap();
    assert_eq!(b.variants.len(), 1, "{b:?}");
    assert_eq!(b.narrowed.len(), 1);
    let n = &b.narrowed[0];
    assert!(
        n.variant.contains("4688") && n.in_filter && n.dropped,
        "{n:?}"
    );
    assert_eq!(n.fields.iter().collect::<Vec<_>>(), ["OriginalFileName"]);
    // An alternative on an unknown field falls away; the rest of the rule still runs on 4688.
    let either = Expr::Or(vec![
        eq("Image", "C:\\x.exe"),
        eq("OriginalFileName", "x.exe"),
    ]);
    let b = m.bind(&rule(process(), either), &base).unwrap();
    assert_eq!(b.variants.len(), 2);
    assert_eq!(b.variants[1].detection, eq("image", "C:\\x.exe"));
    assert!(!b.narrowed[0].dropped && !b.narrowed[0].in_filter);
    // A filter on a field 4688 does carry (CommandLine) changes nothing.
    let filtered = Expr::And(vec![
        eq("Image", "C:\\x.exe"),
        Expr::Not(Box::new(eq("CommandLine", "y"))),
    ]);
    let b = m.bind(&rule(process(), filtered), &base).unwrap();
    assert_eq!(b.variants.len(), 2);
    assert!(b.narrowed.is_empty());
    // A logsource without `supplies` (file_event) narrows nothing.
    let b = m
        .bind(
            &rule(ls(Some("windows"), Some("file_event"), None), sacrificial),
            &base,
        )
        .unwrap();
    assert!(b.narrowed.is_empty());
}
