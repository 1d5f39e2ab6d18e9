//! The problem type's old home, kept as a re-export so that code written against
//! `crate::problem::Problem` keeps compiling; new code uses [`crate::http::problem`], where
//! problems are made (nothing below `http/` builds one: it returns a
//! [`crate::domain::error::DomainError`]).

pub use crate::http::problem::{Problem, PROBLEM_TYPE_BASE};
