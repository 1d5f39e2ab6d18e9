//! What the merchant lists share (DESIGN §2, "Lists"; Stripe's list shape,
//! <https://docs.stripe.com/api/pagination>): the query's `limit` (1–100, default 10),
//! `starting_after` and `ending_before` (an id in the list; an unknown id, or another
//! merchant's, is 400 naming the parameter), `created[gte|gt|lt|lte]` where the list is by
//! creation time, and the answer `{"object":"list","data":[...],"has_more":bool,"url":...}`.
//!
//! `created` bounds take Unix seconds (at most [`UNIX_SECONDS_MAX`]), as Stripe's do, or an RFC 3339 time (the
//! objects' `created_at`), which bounds to the millisecond.

use std::collections::HashMap;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::http::json_response;
use crate::problem::Problem;
use crate::store::tables::merchant_index::{ListPage, Page, Window};
use crate::store::StoreError;

/// `limit` when absent, and its bounds (DESIGN §2).
pub const LIMIT_DEFAULT: usize = 10;
pub const LIMIT_MAX: usize = 100;

/// The latest `created` bound in Unix seconds: the end of year 9999, the last instant an
/// RFC 3339 time can name.
pub const UNIX_SECONDS_MAX: u64 = 253_402_300_799;

/// The `created` bounds of a list by creation time.
pub const CREATED: &[&str] = &["created[gte]", "created[gt]", "created[lt]", "created[lte]"];

/// The query members every list takes.
const PAGING: &[&str] = &["limit", "starting_after", "ending_before"];

/// A list's query, validated: its members by name, `limit`, and the `created` window.
#[derive(Debug)]
pub struct ListQuery {
    pub params: HashMap<String, String>,
    pub limit: usize,
    pub window: Window,
}

impl ListQuery {
    /// Parses `query`: the paging members, `extra` ones, and the `created` bounds when
    /// `by_created`; anything else is 400 naming it.
    ///
    /// # Errors
    /// 400 `invalid_request` naming the member that is unknown or out of range.
    pub fn parse(query: &str, extra: &[&str], by_created: bool) -> Result<ListQuery, Problem> {
        let params: HashMap<String, String> = serde_urlencoded::from_str(query)
            .map_err(|_| Problem::invalid("", "the query string could not be parsed"))?;
        let known = |name: &str| {
            PAGING.contains(&name)
                || extra.contains(&name)
                || (by_created && CREATED.contains(&name))
        };
        if let Some(other) = params.keys().find(|name| !known(name)) {
            return Err(Problem::invalid(
                other,
                format!("unknown query parameter `{other}`"),
            ));
        }
        let limit = match params.get("limit") {
            None => LIMIT_DEFAULT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIMIT_MAX).contains(n))
                .ok_or_else(|| {
                    Problem::invalid("limit", format!("limit must be 1..={LIMIT_MAX}"))
                })?,
        };
        let mut window = Window::default();
        for name in CREATED {
            let Some(text) = params.get(*name) else {
                continue;
            };
            let (ms, unit) = instant_ms(text).ok_or_else(|| {
                Problem::invalid(
                    name,
                    format!("{name} must be Unix seconds or an RFC 3339 time"),
                )
            })?;
            let (bound, at) = match *name {
                "created[gte]" => (&mut window.gte_ms, ms),
                "created[gt]" => (&mut window.gte_ms, ms.saturating_add(unit)),
                "created[lt]" => (&mut window.lt_ms, ms),
                _ => (&mut window.lt_ms, ms.saturating_add(unit)),
            };
            // Two bounds on one side: the narrower holds.
            *bound = Some(match (*bound, name.contains("gt")) {
                (Some(other), true) => other.max(at),
                (Some(other), false) => other.min(at),
                (None, _) => at,
            });
        }
        Ok(ListQuery {
            params,
            limit,
            window,
        })
    }

    /// Whether the page is read newer-wards (`ending_before`), the direction [`answer`]
    /// names its continuation cursor for.
    pub fn reads_newer(&self) -> bool {
        self.params.contains_key("ending_before")
    }

    /// The page the cursor members ask for; `locate` finds an id's place `C` in the list
    /// (`None`: not the merchant's).
    ///
    /// # Errors
    /// 400 naming `starting_after` or `ending_before` for an id `locate` does not find, or
    /// when both are given; `locate`'s error.
    pub fn page<C>(
        &self,
        mut locate: impl FnMut(&str) -> Result<Option<C>, Problem>,
    ) -> Result<ListPage<C>, Problem> {
        let mut cursor = |name: &str| -> Result<Option<C>, Problem> {
            let Some(id) = self.params.get(name) else {
                return Ok(None);
            };
            match locate(id)? {
                Some(found) => Ok(Some(found)),
                None => Err(Problem::invalid(name, format!("{name}: no such id `{id}`"))),
            }
        };
        Ok(
            match (cursor("starting_after")?, cursor("ending_before")?) {
                (Some(_), Some(_)) => {
                    return Err(Problem::invalid(
                        "ending_before",
                        "starting_after and ending_before cannot be used together",
                    ))
                }
                (Some(after), None) => ListPage::After(after),
                (None, Some(before)) => ListPage::Before(before),
                (None, None) => ListPage::First,
            },
        )
    }
}

/// An instant given as Unix seconds (the unit is then 1,000 ms) or as an RFC 3339 time
/// (unit 1 ms): (Unix ms, unit).
fn instant_ms(text: &str) -> Option<(u64, u64)> {
    if let Ok(seconds) = text.parse::<u64>() {
        return (seconds <= UNIX_SECONDS_MAX).then(|| (seconds * 1_000, 1_000));
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    Some((u64::try_from(ms).ok()?, 1))
}

/// 200 with a list at `url`: the page's items, each item's JSON text (kept as written, so
/// an item's members stand in the order its own route answers them), `has_more`, and when
/// more follow, the id to continue from under the name of the cursor that takes it:
/// `next_ending_before` for a page read with `ending_before`, else `next_starting_after`.
/// It is the last item's id unless a filter's page stopped at the scan bound
/// ([`crate::store::tables::merchant_index::ITEMS_SCANNED_MAX`]), where `data` may even be
/// empty: Stripe's clients continue from the last item, which such a page may not have.
pub fn answer(url: &str, query: &ListQuery, page: Page<String>) -> Response {
    let url = Value::from(url);
    let data = page.data.join(",");
    let body = match page.next {
        None => format!(r#"{{"object":"list","data":[{data}],"has_more":false,"url":{url}}}"#),
        Some(id) => {
            let cursor = if query.reads_newer() {
                "next_ending_before"
            } else {
                "next_starting_after"
            };
            let id = Value::from(id);
            format!(
                r#"{{"object":"list","data":[{data}],"has_more":true,"url":{url},"{cursor}":{id}}}"#
            )
        }
    };
    json_response(StatusCode::OK, body)
}

/// A store failure met while listing: logged, answered 500.
impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        crate::http::payments::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(query: &str) -> Result<Window, ()> {
        ListQuery::parse(query, &[], true)
            .map(|q| q.window)
            .map_err(|_| ())
    }

    #[test]
    fn created_bounds_take_seconds_or_rfc3339_and_the_narrower_holds() {
        assert_eq!(
            window("created[gte]=10&created[lt]=20").unwrap(),
            Window {
                gte_ms: Some(10_000),
                lt_ms: Some(20_000)
            }
        );
        assert_eq!(
            window("created[gt]=10&created[lte]=20").unwrap(),
            Window {
                gte_ms: Some(11_000),
                lt_ms: Some(21_000)
            }
        );
        assert_eq!(
            window("created[gte]=1970-01-01T00:00:01.500Z&created[gt]=1").unwrap(),
            Window {
                gte_ms: Some(2_000),
                lt_ms: None
            }
        );
        assert!(window("created[gte]=yesterday").is_err());
        assert!(window(&format!("created[lt]={UNIX_SECONDS_MAX}")).is_ok());
        assert!(window(&format!("created[lt]={}", UNIX_SECONDS_MAX + 1)).is_err());
        assert!(window("created[gte]=18446744073709552").is_err());
        assert!(window("created[eq]=1").is_err());
        assert!(ListQuery::parse("limit=0", &[], false).is_err());
        assert!(ListQuery::parse("limit=101", &[], false).is_err());
        assert_eq!(
            ListQuery::parse("limit=100", &[], false).unwrap().limit,
            100
        );
        assert!(ListQuery::parse("created[gte]=1", &[], false).is_err());
    }
}
