#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! docs/maturity-rubric.md must carry exactly the rubric the scorer uses.

use tenet_assess::Scorecard;
use tenet_assess::score::FACTS;

#[test]
fn rubric_document_matches_the_code() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/maturity-rubric.md"
    ))
    .unwrap_or_default();
    let table = Scorecard::rubric_markdown();
    assert!(
        doc.contains(&table),
        "docs/maturity-rubric.md is out of date; its rubric table must be:\n{table}"
    );
    for (id, meaning) in FACTS {
        assert!(
            doc.contains(&format!("| `{id}` | {meaning} |")),
            "fact {id} is not described in the document"
        );
    }
}
