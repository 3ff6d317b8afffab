//! ahmetb/kubernetes-network-policy-recipes: the policy YAML of each recipe (parsed from the
//! markdown) against the reachability the recipe's text states.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::Ipv4Addr;

use tenet_k8s::{Address, Cluster, Protocol};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/kubernetes-network-policy-recipes"
);

/// The ```yaml blocks of a markdown file.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// `ns/name:k=v,k=v` pods and `ns:k=v` namespaces as manifests.
fn world(pods: &[&str], namespaces: &[&str]) -> String {
    let labels = |spec: &str| -> String {
        spec.split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                format!("{k}: {v}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    for ns in namespaces {
        let (name, l) = ns.split_once(':').unwrap_or((ns, ""));
        out += &format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{}}}}}\n",
            labels(l)
        );
    }
    for pod in pods {
        let (id, l) = pod.split_once(':').unwrap_or((pod, ""));
        let (ns, name) = id.split_once('/').unwrap();
        out += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{}}}}}\n\
             spec: {{containers: [{{name: c, ports: [{{name: api-port, containerPort: 5000}}]}}]}}\n",
            labels(l)
        );
    }
    out
}

struct Recipe {
    file: &'static str,
    /// Which ```yaml blocks are applied together.
    blocks: &'static [usize],
    pods: &'static [&'static str],
    namespaces: &'static [&'static str],
    /// (from, to, TCP port, allowed): from/to are `ns/pod` or an IPv4 address.
    checks: &'static [(&'static str, &'static str, u16, bool)],
}

const RECIPES: &[Recipe] = &[
    Recipe {
        file: "01-deny-all-traffic-to-an-application.md",
        blocks: &[0],
        pods: &["default/web:app=web", "default/test"],
        namespaces: &[],
        checks: &[("default/test", "default/web", 80, false)],
    },
    Recipe {
        file: "02-limit-traffic-to-an-application.md",
        blocks: &[0],
        pods: &[
            "default/apiserver:app=bookstore,role=api",
            "default/test",
            "default/frontend:app=bookstore,role=frontend",
        ],
        namespaces: &[],
        checks: &[
            ("default/test", "default/apiserver", 80, false),
            ("default/frontend", "default/apiserver", 80, true),
        ],
    },
    Recipe {
        file: "02a-allow-all-traffic-to-an-application.md",
        blocks: &[0],
        pods: &["default/web:app=web", "default/test"],
        namespaces: &[],
        checks: &[("default/test", "default/web", 80, true)],
    },
    Recipe {
        file: "03-deny-all-non-whitelisted-traffic-in-the-namespace.md",
        blocks: &[0],
        pods: &["default/web:app=web", "default/test"],
        namespaces: &[],
        checks: &[("default/test", "default/web", 80, false)],
    },
    Recipe {
        file: "04-deny-traffic-from-other-namespaces.md",
        blocks: &[0],
        pods: &["default/web:app=web", "default/test", "foo/test"],
        namespaces: &["foo"],
        checks: &[
            ("foo/test", "default/web", 80, false),
            ("default/test", "default/web", 80, true),
        ],
    },
    Recipe {
        file: "05-allow-traffic-from-all-namespaces.md",
        blocks: &[0],
        pods: &["default/web:app=web", "secondary/test"],
        namespaces: &["secondary"],
        checks: &[("secondary/test", "default/web", 80, true)],
    },
    Recipe {
        file: "06-allow-traffic-from-a-namespace.md",
        blocks: &[0],
        pods: &["default/web:app=web", "dev/test", "prod/test"],
        namespaces: &["dev:purpose=testing", "prod:purpose=production"],
        checks: &[
            ("dev/test", "default/web", 80, false),
            ("prod/test", "default/web", 80, true),
        ],
    },
    Recipe {
        file: "07-allow-traffic-from-some-pods-in-another-namespace.md",
        blocks: &[0],
        pods: &[
            "default/web:app=web",
            "default/mon:type=monitoring",
            "other/mon:type=monitoring",
            "other/plain",
            "operations/plain",
            "operations/mon:type=monitoring",
        ],
        namespaces: &["other", "operations:team=operations"],
        checks: &[
            ("default/mon", "default/web", 80, false),
            ("other/mon", "default/web", 80, false),
            ("operations/plain", "default/web", 80, false),
            ("operations/mon", "default/web", 80, true),
        ],
    },
    Recipe {
        file: "08-allow-external-traffic.md",
        blocks: &[0],
        pods: &["default/web:app=web"],
        namespaces: &[],
        checks: &[("203.0.113.7", "default/web", 80, true)],
    },
    Recipe {
        file: "09-allow-traffic-only-to-a-port.md",
        blocks: &[0],
        pods: &[
            "default/apiserver:app=apiserver",
            "default/test",
            "default/mon:role=monitoring",
        ],
        namespaces: &[],
        checks: &[
            ("default/test", "default/apiserver", 5000, false),
            ("default/test", "default/apiserver", 8000, false),
            ("default/mon", "default/apiserver", 5000, true),
            ("default/mon", "default/apiserver", 8000, false),
        ],
    },
    Recipe {
        file: "10-allowing-traffic-with-multiple-selectors.md",
        blocks: &[0],
        pods: &[
            "default/db:app=bookstore,role=db",
            "default/search:app=bookstore,role=search",
            "default/api:app=bookstore,role=api",
            "default/inv:app=inventory,role=web",
            "default/web:app=other,role=web",
        ],
        namespaces: &[],
        checks: &[
            ("default/search", "default/db", 6379, true),
            ("default/api", "default/db", 6379, true),
            ("default/inv", "default/db", 6379, true),
            ("default/web", "default/db", 6379, false),
        ],
    },
    Recipe {
        file: "11-deny-egress-traffic-from-an-application.md",
        blocks: &[0],
        pods: &["default/foo:app=foo", "default/web:app=web"],
        namespaces: &[],
        checks: &[
            ("default/foo", "default/web", 80, false),
            ("default/foo", "93.184.216.34", 80, false),
        ],
    },
    Recipe {
        file: "12-deny-all-non-whitelisted-traffic-from-the-namespace.md",
        blocks: &[0],
        pods: &["default/test", "default/web:app=web", "other/web:app=web"],
        namespaces: &["other"],
        checks: &[
            ("default/test", "default/web", 80, false),
            ("default/test", "other/web", 80, false),
            ("other/web", "default/web", 80, true),
        ],
    },
    // The text says app=foo still reaches `web` on port 80, but the recipe's YAML allows only
    // DNS to kube-dns (an older version of the recipe allowed every in-cluster destination).
    Recipe {
        file: "14-deny-external-egress-traffic.md",
        blocks: &[0],
        pods: &["default/foo:app=foo", "default/web:app=web"],
        namespaces: &[],
        checks: &[
            ("default/foo", "default/web", 80, true),
            ("default/foo", "93.184.216.34", 80, false),
        ],
    },
];

fn address(text: &str) -> Address {
    match text.parse::<Ipv4Addr>() {
        Ok(ip) => Address::Ip(ip),
        Err(_) => Address::Workload(text.to_owned()),
    }
}

#[test]
fn network_policy_recipes() {
    let (mut passed, mut total) = (0, 0);
    for recipe in RECIPES {
        let markdown = std::fs::read_to_string(format!("{CORPUS}/{}", recipe.file))
            .unwrap_or_else(|e| panic!("corpus missing: {}: {e}", recipe.file));
        let blocks = yaml_blocks(&markdown);
        let mut cluster = Cluster::new();
        cluster
            .add_text("world.yaml", &world(recipe.pods, recipe.namespaces))
            .unwrap();
        for &i in recipe.blocks {
            let used = cluster.add_text(recipe.file, &blocks[i]).unwrap();
            assert!(
                used > 0,
                "{}: block {i} holds no Kubernetes object",
                recipe.file
            );
        }
        assert!(
            cluster.policy_count() > 0,
            "{}: no policy read",
            recipe.file
        );
        total += 1;
        let mut ok = true;
        for &(from, to, port, expected) in recipe.checks {
            let got = cluster
                .allowed(&address(from), &address(to))
                .unwrap()
                .allows(Protocol::Tcp, port);
            if got != expected {
                println!(
                    "FAIL {}: {from} -> {to}:{port} expected allowed={expected}, got {got}",
                    recipe.file
                );
                ok = false;
            }
        }
        passed += usize::from(ok);
    }
    println!("network-policy recipes: {passed}/{total}");
    assert!(passed >= 13, "regression: {passed}/{total}");
}
