//! tenet assess and tenet score: input recognition, the combined report (text, JSON, SARIF), the maturity score.
