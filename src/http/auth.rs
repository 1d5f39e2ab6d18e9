//! Bearer authentication. Keys are compared in constant time (`subtle`), and every
//! configured key is compared so the time does not tell which merchant almost matched.

use subtle::ConstantTimeEq;

use crate::config::MerchantConfig;
use crate::problem::Problem;

/// The merchant id whose `api_key` is the bearer token of `authorization`.
///
/// # Errors
/// 401 `unauthorized` when the header is missing, not `Bearer`, or matches no merchant.
pub fn merchant<'a>(
    merchants: &'a [MerchantConfig],
    authorization: Option<&str>,
) -> Result<&'a str, Problem> {
    let token = bearer(authorization).ok_or_else(unauthorized)?;
    let mut found = None;
    for m in merchants {
        if bool::from(m.api_key.as_bytes().ct_eq(token.as_bytes())) {
            found = Some(m.id.as_str());
        }
    }
    let found = found.ok_or_else(unauthorized)?;
    crate::http::request_id::note_merchant(found);
    Ok(found)
}

/// Whether `authorization` carries `expected` as its bearer token (constant time).
pub fn is_bearer(expected: &str, authorization: Option<&str>) -> bool {
    bearer(authorization).is_some_and(|t| bool::from(expected.as_bytes().ct_eq(t.as_bytes())))
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks the admin Bearer token (`admin.token`), in constant time.
///
/// # Errors
/// 401 `unauthorized`.
pub fn admin(token: &str, authorization: Option<&str>) -> Result<(), Problem> {
    if is_bearer(token, authorization) {
        return Ok(());
    }
    Err(Problem::new(
        401,
        "unauthorized",
        "Unauthorized",
        "a valid Authorization: Bearer <admin token> header is required",
    ))
}

/// 401 `unauthorized`.
pub fn unauthorized() -> Problem {
    Problem::new(
        401,
        "unauthorized",
        "Unauthorized",
        "a valid Authorization: Bearer <api key> header is required",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_pick_their_merchant() {
        let merchants = vec![
            MerchantConfig {
                id: "a".into(),
                api_key: "sk_test_aaaaaaaa".into(),
            },
            MerchantConfig {
                id: "b".into(),
                api_key: "sk_test_bbbbbbbb".into(),
            },
        ];
        assert_eq!(
            merchant(&merchants, Some("Bearer sk_test_bbbbbbbb")).unwrap(),
            "b"
        );
        assert_eq!(
            merchant(&merchants, Some("bearer sk_test_aaaaaaaa")).unwrap(),
            "a"
        );
        assert_eq!(
            merchant(&merchants, Some("Bearer nope"))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            merchant(&merchants, Some("Basic sk_test_aaaaaaaa"))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(merchant(&merchants, None).unwrap_err().status, 401);
    }
}
