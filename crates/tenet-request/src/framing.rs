//! Message framing: one unambiguous way to find where a request body ends.
//!
//! A request may carry one Content-Length of decimal digits, or one Transfer-Encoding whose
//! whole value is `chunked` (any case), or neither; anything else is rejected, because a
//! backend that frames the body differently would read the rest as a second request.

use http::{HeaderMap, HeaderValue, header};

use crate::Rejection;
use crate::rejection::quote_input;

/// Reject requests whose body framing is ambiguous.
///
/// # Errors
/// [`Rejection::ContentLengthWithTransferEncoding`], [`Rejection::DuplicateHeader`] (several
/// Content-Length or Transfer-Encoding fields), [`Rejection::InvalidContentLength`] or
/// [`Rejection::UnsupportedTransferEncoding`].
pub fn check_framing(headers: &HeaderMap) -> Result<(), Rejection> {
    let content_length = single(headers, header::CONTENT_LENGTH);
    let transfer_encoding = single(headers, header::TRANSFER_ENCODING);
    if !matches!(content_length, Single::Absent) && !matches!(transfer_encoding, Single::Absent) {
        return Err(Rejection::ContentLengthWithTransferEncoding);
    }

    match content_length {
        Single::Absent => {}
        Single::Repeated => return Err(Rejection::DuplicateHeader(header::CONTENT_LENGTH)),
        Single::One(value) => check_content_length(value)?,
    }
    match transfer_encoding {
        Single::Absent => Ok(()),
        Single::Repeated => Err(Rejection::DuplicateHeader(header::TRANSFER_ENCODING)),
        Single::One(value) if value.as_bytes().eq_ignore_ascii_case(b"chunked") => Ok(()),
        Single::One(value) => Err(Rejection::UnsupportedTransferEncoding(quote_input(
            value.as_bytes(),
        ))),
    }
}

enum Single<'a> {
    Absent,
    One(&'a HeaderValue),
    Repeated,
}

fn single(headers: &HeaderMap, name: header::HeaderName) -> Single<'_> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Single::Absent,
        (Some(value), None) => Single::One(value),
        (Some(_), Some(_)) => Single::Repeated,
    }
}

/// 1*DIGIT that fits in a u64: no sign, no whitespace, no list.
fn check_content_length(value: &HeaderValue) -> Result<(), Rejection> {
    let bytes = value.as_bytes();
    let digits_only = !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
    let fits = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .is_some();
    if digits_only && fits {
        Ok(())
    } else {
        Err(Rejection::InvalidContentLength(quote_input(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn map(fields: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn single_unambiguous_framing_passes() {
        assert_eq!(check_framing(&map(&[])), Ok(()));
        assert_eq!(check_framing(&map(&[("content-length", b"0")])), Ok(()));
        assert_eq!(
            check_framing(&map(&[("content-length", b"18446744073709551615")])),
            Ok(())
        );
        assert_eq!(
            check_framing(&map(&[("transfer-encoding", b"chunked")])),
            Ok(())
        );
        assert_eq!(
            check_framing(&map(&[("Transfer-Encoding", b"Chunked")])),
            Ok(())
        );
    }

    #[test]
    fn content_length_with_transfer_encoding_is_rejected() {
        let both = map(&[("content-length", b"4"), ("transfer-encoding", b"chunked")]);
        assert_eq!(
            check_framing(&both),
            Err(Rejection::ContentLengthWithTransferEncoding)
        );
        let odd = map(&[("content-length", b"x"), ("transfer-encoding", b"gzip")]);
        assert_eq!(
            check_framing(&odd),
            Err(Rejection::ContentLengthWithTransferEncoding)
        );
    }

    #[test]
    fn content_length_must_be_one_decimal_number() {
        let invalid = |v: &str| Err(Rejection::InvalidContentLength(v.to_owned()));
        for value in [
            "+5", "-1", "5 ", " 5", "5,5", "5, 5", "0x10", "", "1e3", "٣",
        ] {
            let headers = map(&[("content-length", value.as_bytes())]);
            assert_eq!(check_framing(&headers), invalid(value), "{value:?}");
        }
        let overflow = map(&[("content-length", b"18446744073709551616")]);
        assert_eq!(check_framing(&overflow), invalid("18446744073709551616"));
        let twice = map(&[("content-length", b"5"), ("content-length", b"5")]);
        assert_eq!(
            check_framing(&twice),
            Err(Rejection::DuplicateHeader(header::CONTENT_LENGTH))
        );
    }

    #[test]
    fn transfer_encoding_must_be_exactly_chunked() {
        for value in [
            "chunked\t",
            " chunked",
            "gzip, chunked",
            "chunked, chunked",
            "identity",
        ] {
            let headers = map(&[("transfer-encoding", value.as_bytes())]);
            assert_eq!(
                check_framing(&headers),
                Err(Rejection::UnsupportedTransferEncoding(value.to_owned())),
                "{value:?}"
            );
        }
        let twice = map(&[
            ("transfer-encoding", b"chunked"),
            ("transfer-encoding", b"chunked"),
        ]);
        assert_eq!(
            check_framing(&twice),
            Err(Rejection::DuplicateHeader(header::TRANSFER_ENCODING))
        );
    }
}
