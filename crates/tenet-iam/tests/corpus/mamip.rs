//! MAMIP: every AWS managed policy parses; AdministratorAccess is admin; ReadOnlyAccess has no
//! escalation.

use tenet_iam::{Options, Policy, analyze};

fn load(name: &str) -> Policy {
    let path = super::corpus("mamip/policies").join(name);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Policy::from_value(name, &v["PolicyVersion"]["Document"]).unwrap()
}

#[test]
fn mamip_parse() {
    let dir = super::corpus("mamip/policies");
    let mut total = 0;
    let mut passed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        total += 1;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        match Policy::from_value("m", &v["PolicyVersion"]["Document"]) {
            Ok(p)
                if !p.issues.iter().any(|i| i.rule == "iam.policy-malformed")
                    && !p.statements.is_empty() =>
            {
                passed += 1
            }
            other => eprintln!("{} does not parse: {other:?}", path.display()),
        }
    }
    println!("mamip parse: {passed}/{total}");
    assert_eq!(total, 1390);
    assert!(passed >= 1388, "mamip parse fell to {passed}");
}

#[test]
fn mamip_admin_and_read_only() {
    let opts = Options {
        now: Some(super::NOW),
        escalation: true,
    };
    let admin = analyze(&load("AdministratorAccess"), opts);
    assert!(admin.iter().any(|h| h.rule == "iam.admin-equivalent"));
    let ro = analyze(&load("ReadOnlyAccess"), opts);
    let esc: Vec<_> = ro
        .iter()
        .filter(|h| h.rule == "iam.privilege-escalation")
        .map(|h| &h.title)
        .collect();
    assert!(esc.is_empty(), "ReadOnlyAccess escalations: {esc:?}");
    assert!(!ro.iter().any(|h| h.rule == "iam.admin-equivalent"));
}
