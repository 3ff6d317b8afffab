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
    /// A device sent more posture reports than it may in a window; the report was neither
    /// kept nor recorded.
    #[error(
        "device {device_id} sent more than {max} posture reports in {window_secs} s; the next \
         is taken from {}",
        until.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    )]
    TooManyReports {
        /// The device.
        device_id: uuid::Uuid,
        /// The most reports a device may send per window.
        max: u32,
        /// The window's length in seconds.
        window_secs: u64,
        /// When the device's window ends.
        until: time::OffsetDateTime,
    },
    /// An MDM export could not be imported.
    #[error(transparent)]
    Mdm(#[from] tenet_device::MdmError),
    /// The session store failed.
    #[error(transparent)]
    Session(#[from] tenet_session::SessionError),
}
