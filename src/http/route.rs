//! The shapes most read-only routes share, written once: `GET` (and `HEAD`) of a path
//! with the caller's `Authorization` header and either the query string or one path
//! segment, answered by a plain function and counted under its route label.

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::http::{raw_query, respond, with_authorization, State};
use crate::problem::Problem;

/// A read handler: the state, the raw `Authorization` header, and the query string or the
/// path segment.
pub type Read = fn(&State, Option<&str>, &str) -> Result<Response, Problem>;

/// `GET path?query`, answered by `read(state, authorization, query)`.
pub fn get_with_query(
    path: impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    state: &State,
    route: &'static str,
    read: Read,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    path.and(crate::http::get())
        .and(with_authorization(state))
        .and(raw_query())
        .then(
            move |state: State, authorization: Option<String>, query: String| async move {
                respond(&state.metrics, route, async {
                    read(&state, authorization.as_deref(), &query)
                })
                .await
            },
        )
}

/// `GET path/{segment}`, answered by `read(state, authorization, segment)`.
pub fn get_with_segment(
    path: impl Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
    state: &State,
    route: &'static str,
    read: Read,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    path.and(crate::http::get())
        .and(with_authorization(state))
        .then(
            move |segment: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, route, async {
                    read(&state, authorization.as_deref(), &segment)
                })
                .await
            },
        )
}

/// A collection's two reads: `GET collection/{id}` answered by `one` and
/// `GET collection?query` by `query`, each `(route label, handler)`.
pub fn get_one_or_query(
    item: impl Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
    collection: impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    state: &State,
    one: (&'static str, Read),
    query: (&'static str, Read),
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    get_with_segment(item, state, one.0, one.1)
        .or(get_with_query(collection, state, query.0, query.1))
        .unify()
}
