//! Property tests of the SPIFFE ID parser.

use proptest::prelude::*;
use tenet_identity::{SpiffeId, TrustDomain};

/// Strings that look like SPIFFE IDs, built from the characters that matter to the rules:
/// mostly well-formed pieces, with bad schemes, uppercase, '%', ':', '@', empty and dot
/// segments mixed in.
fn spiffe_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![8 => Just("spiffe://"), 1 => Just("SPIFFE://"), 1 => Just("spiffe:/")];
    let td = prop_oneof![8 => "[a-z0-9._-]{1,10}", 1 => "[a-zA-Z0-9._%:@-]{0,10}"];
    let segment = prop_oneof![
        12 => "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,4}",
        1 => "%[0-9A-F]{2}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(String::new()),
    ];
    let path = proptest::collection::vec(segment, 0..5)
        .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect::<String>());
    (scheme, td, path).prop_map(|(scheme, td, path)| format!("{scheme}{td}{path}"))
}

fn check_accepted(input: &str) {
    if let Ok(id) = SpiffeId::parse(input) {
        assert_eq!(id.to_string(), input, "parse then print is the identity");
        assert_eq!(id.as_str(), input);
        assert_eq!(
            format!("spiffe://{}{}", id.trust_domain(), id.path()),
            input
        );
        let rest = input.strip_prefix("spiffe://").expect("scheme");
        assert!(!rest.contains('%'), "{input}");
        assert!(!rest.contains("//"), "{input}");
        assert!(!rest.contains("/./") && !rest.contains("/../"), "{input}");
        assert!(
            !rest.ends_with('/') && !rest.ends_with("/.") && !rest.ends_with("/.."),
            "{input}"
        );
        assert!(
            id.trust_domain()
                .as_str()
                .chars()
                .all(|c| !c.is_ascii_uppercase()),
            "{input}"
        );
        assert_eq!(SpiffeId::parse(&id.to_string()).unwrap(), id);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics_and_round_trips(input in any::<String>()) {
        check_accepted(&input);
        let _ = TrustDomain::from_name_or_id(&input);
        if let Ok(td) = TrustDomain::parse(&input) {
            prop_assert_eq!(td.as_str(), input.as_str());
        }
    }

    #[test]
    fn near_misses_are_rejected_or_canonical(input in spiffe_like()) {
        check_accepted(&input);
    }
}

#[test]
fn the_near_miss_generator_reaches_both_outcomes() {
    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..2000 {
        let input = spiffe_like().new_tree(&mut runner).unwrap().current();
        if SpiffeId::parse(&input).is_ok() {
            accepted += 1
        } else {
            rejected += 1
        }
    }
    assert!(
        accepted > 100 && rejected > 100,
        "accepted {accepted}, rejected {rejected}"
    );
}
