//! The errors of this crate: each names the input and the problem.

/// Something in the input this crate could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// A YAML or JSON document did not parse.
    #[error("document {document}: {message}")]
    Parse {
        /// 0-based index of the document in the stream.
        document: usize,
        /// The parser's message, with its position.
        message: String,
    },
    /// The flows file given to the segmentation generator is not valid.
    #[error("flows file: {0}")]
    Flows(String),
    /// A flow names a workload that is not in the manifests.
    #[error("flow {flow}: workload {workload:?} is not in the manifests")]
    UnknownWorkload {
        /// 0-based index of the flow.
        flow: usize,
        /// The `namespace/name` as written.
        workload: String,
    },
    /// A workload's labels also select another workload, so no policy can name it alone.
    #[error(
        "workload {workload:?}: its labels also select {other:?}; give it a distinguishing label"
    )]
    AmbiguousWorkload {
        /// The workload the flow names.
        workload: String,
        /// Another workload its label selector matches.
        other: String,
    },
}
