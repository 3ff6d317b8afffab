#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tenet_terraform::{Mode, Module, reference_target};

fn corpus(rel: &str) -> PathBuf {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ))
    .join(rel);
    assert!(path.exists(), "corpus folder {} is missing", path.display());
    path
}

fn module_of(dir: &PathBuf) -> Module {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".tf") || name.ends_with(".tf.json") {
            files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    files.sort();
    Module::from_files(&files)
}

#[test]
fn evaluates_jsonencode_variables_locals_and_heredocs() {
    let tf = r#"
variable "arn" {
  default = "arn:aws:iam::111122223333:root"
}
locals {
  bucket = "${local.prefix}-logs"
  prefix = "acme"
}
resource "aws_iam_policy" "p" {
  name   = "p-${var.arn}"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["s3:GetObject"], Resource = "arn:aws:s3:::${local.bucket}/*", Principal = { AWS = var.arn } }]
  })
}
resource "aws_iam_role_policy" "h" {
  role   = aws_iam_role.r.id
  policy = <<-EOT
    {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
  EOT
}
resource "aws_iam_user_policy_attachment" "a" {
  policy_arn = aws_iam_policy.p.arn
  user       = aws_iam_user.u[0].name
}
data "aws_iam_policy_document" "d" {
  statement {
    actions   = ["iam:PassRole"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
  statement {
    actions = ["ec2:RunInstances"]
  }
}
"#;
    let m = Module::from_files(&[("main.tf".into(), tf.into())]);
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    let p = m.get("aws_iam_policy.p").unwrap();
    assert_eq!(p.mode, Mode::Resource);
    assert_eq!(p.line, Some(9));
    assert_eq!(p.str_attr("name"), Some("p-arn:aws:iam::111122223333:root"));
    let doc: Value = serde_json::from_str(p.str_attr("policy").unwrap()).unwrap();
    assert_eq!(
        doc["Statement"][0]["Resource"],
        json!("arn:aws:s3:::acme-logs/*")
    );
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        json!("arn:aws:iam::111122223333:root")
    );

    let h = m.get("aws_iam_role_policy.h").unwrap();
    let doc: Value = serde_json::from_str(h.str_attr("policy").unwrap()).unwrap();
    assert_eq!(doc["Statement"][0]["Effect"], json!("Deny"));
    assert_eq!(h.str_attr("role"), Some("${aws_iam_role.r.id}"));

    let a = m.get("aws_iam_user_policy_attachment.a").unwrap();
    assert_eq!(
        reference_target(a.str_attr("policy_arn").unwrap()),
        Some(("aws_iam_policy.p".to_owned(), "arn".to_owned()))
    );
    assert_eq!(
        reference_target(a.str_attr("user").unwrap()),
        Some(("aws_iam_user.u".to_owned(), "name".to_owned()))
    );

    let d = m.get("data.aws_iam_policy_document.d").unwrap();
    assert_eq!(d.mode, Mode::Data);
    let statements = d.nested("statement");
    assert_eq!(statements.len(), 2);
    assert_eq!(
        statements[0]["condition"][0]["values"],
        json!(["ec2.amazonaws.com"])
    );
    assert_eq!(
        reference_target("${data.aws_iam_policy_document.d.json}"),
        Some((
            "data.aws_iam_policy_document.d".to_owned(),
            "json".to_owned()
        ))
    );
    assert_eq!(reference_target("plain"), None);
    assert_eq!(reference_target("${var.x}-y"), None);
}

#[test]
fn reads_terraform_json() {
    let tf = r#"{
      "variable": {"cidr": {"default": "0.0.0.0/0"}},
      "resource": {"aws_security_group": {"web": {
         "ingress": [{"from_port": 22, "to_port": 22, "protocol": "tcp", "cidr_blocks": ["${var.cidr}"]}]
      }}}
    }"#;
    let m = Module::from_files(&[("main.tf.json".into(), tf.into())]);
    let sg = m.get("aws_security_group.web").unwrap();
    assert_eq!(sg.nested("ingress")[0]["cidr_blocks"], json!(["0.0.0.0/0"]));
    assert_eq!(sg.file, "main.tf.json");
}

#[test]
fn bad_files_are_skipped_with_reasons() {
    let deep = format!("locals {{ x = {}1{} }}", "[".repeat(5000), "]".repeat(5000));
    let m = Module::from_files(&[
        ("broken.tf".into(), "resource \"a\" {".into()),
        ("one-label.tf".into(), "resource \"a\" { }".into()),
        ("bad.tf.json".into(), "[1, 2]".into()),
        ("garbage.tf.json".into(), "{".into()),
        ("deep.tf".into(), deep),
        (
            "ok.tf".into(),
            "resource \"aws_s3_bucket\" \"b\" { bucket = \"x\" }".into(),
        ),
    ]);
    let reasons: Vec<String> = m
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.input, s.reason))
        .collect();
    assert_eq!(m.skipped.len(), 5, "{reasons:#?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("broken.tf: invalid HCL")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("one-label.tf: a resource block needs exactly two labels"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("bad.tf.json: Terraform JSON must be an object"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("garbage.tf.json: invalid JSON"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("deep.tf: brackets nested deeper"))
    );
    assert_eq!(m.blocks.len(), 1);
}

#[test]
fn iam_vulnerable_modules_parse_completely() {
    for dir in [
        "iam-vulnerable/modules/free-resources/privesc-paths",
        "iam-vulnerable/modules/free-resources/tool-testing",
    ] {
        let m = module_of(&corpus(dir));
        assert!(m.skipped.is_empty(), "{dir}: {:?}", m.skipped);
        assert!(m.blocks.len() > 20, "{dir}: only {} blocks", m.blocks.len());
        for b in m
            .of_kind("aws_iam_policy")
            .filter(|b| b.mode == Mode::Resource)
        {
            let policy = b
                .str_attr("policy")
                .unwrap_or_else(|| panic!("{} has no policy", b.address));
            if let Some((target, attr)) = reference_target(policy) {
                assert_eq!(attr, "json");
                assert!(
                    m.get(&target).is_some(),
                    "{} refers to missing {target}",
                    b.address
                );
            } else {
                let doc: Value = serde_json::from_str(policy)
                    .unwrap_or_else(|e| panic!("{}: policy is not JSON: {e}", b.address));
                assert!(doc.get("Statement").is_some(), "{}", b.address);
            }
            assert!(b.line.is_some(), "{} has no line", b.address);
        }
    }
}

#[test]
fn checkov_security_group_fixtures_parse() {
    let dir = corpus("checkov-sg-fixtures");
    let mut total = 0;
    for name in [
        "SecurityGroupUnrestrictedIngress22.main.tf",
        "SecurityGroupUnrestrictedIngressAny.main.tf",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let m = Module::from_files(&[(name.to_owned(), text)]);
        assert!(m.skipped.is_empty(), "{name}: {:?}", m.skipped);
        total += m.blocks.len();
    }
    assert!(total > 30, "only {total} blocks");
}

#[test]
fn dynamic_blocks_expand_or_are_reported() {
    let tf = r#"
variable "ports" {
  default = [22, 3389]
}
resource "aws_security_group" "dyn" {
  dynamic "ingress" {
    for_each = var.ports
    content {
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = ["0.0.0.0/0"]
    }
  }
  dynamic "egress" {
    for_each = { web = 443 }
    iterator = rule
    content {
      from_port   = rule.value
      description = rule.key
    }
  }
  ingress {
    from_port = 80
  }
}
resource "aws_security_group" "unknown" {
  dynamic "ingress" {
    for_each = data.external.rules.result
    content {
      from_port = ingress.value
    }
  }
}
"#;
    let m = Module::from_files(&[("main.tf".into(), tf.into())]);
    let sg = m.get("aws_security_group.dyn").unwrap();
    let ports: Vec<&Value> = sg
        .nested("ingress")
        .iter()
        .map(|b| &b["from_port"])
        .collect();
    assert_eq!(ports, vec![&json!(22), &json!(3389), &json!(80)]);
    assert_eq!(sg.nested("egress")[0]["description"], json!("web"));
    assert_eq!(sg.nested("egress")[0]["from_port"], json!(443));
    assert_eq!(m.skipped.len(), 1, "{:?}", m.skipped);
    assert_eq!(m.skipped[0].input, "main.tf:aws_security_group.unknown");
    assert!(
        m.skipped[0].reason.contains("for_each is not known"),
        "{:?}",
        m.skipped
    );
}

#[test]
fn for_expressions_evaluate_over_known_collections() {
    let tf = r#"
locals {
  actions = ["s3:GetObject", "iam:PassRole"]
}
resource "aws_iam_policy" "p" {
  policy = jsonencode({
    Statement = [for a in local.actions : { Effect = "Allow", Action = a, Resource = "*" } if a != "s3:GetObject"]
  })
  tags = { for k, v in { a = 1, b = 2 } : upper(k) => v }
  unknown = [for x in data.y.z : x]
}
"#;
    let m = Module::from_files(&[("main.tf".into(), tf.into())]);
    let p = m.get("aws_iam_policy.p").unwrap();
    let doc: Value = serde_json::from_str(p.str_attr("policy").unwrap()).unwrap();
    assert_eq!(
        doc["Statement"],
        json!([{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}])
    );
    assert_eq!(p.attr("tags").unwrap(), &json!({"A": 1, "B": 2}));
    assert!(
        p.str_attr("unknown")
            .unwrap()
            .starts_with("${[for x in data.y.z")
    );
}
