//! AWS IAM: policy parsing, evaluation with AWS semantics, the action catalogue, least-privilege findings.
