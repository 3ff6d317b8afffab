//! Errors of the sign-in service.

/// What went wrong setting up or running the sign-in service.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    /// A configuration value is wrong; the message names it.
    #[error("people configuration: {0}")]
    Config(String),
    /// A device or posture file could not be read or written.
    #[error(transparent)]
    DeviceFile(#[from] tenet_device::FileError),
    /// An enrolment was refused.
    #[error(transparent)]
    Enrol(#[from] tenet_device::EnrolError),
    /// A posture report was refused.
    #[error(transparent)]
    Report(#[from] tenet_device::ReportError),
    /// An MDM export could not be imported.
    #[error(transparent)]
    Mdm(#[from] tenet_device::MdmError),
    /// The session store failed.
    #[error(transparent)]
    Session(#[from] tenet_session::SessionError),
}
