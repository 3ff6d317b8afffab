//! Behavioural analytics and risk scores over Tenet's event stream.
