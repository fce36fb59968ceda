//! What both HTTP sides of a region node answer alike: problem documents (RFC 9457) in one
//! shape, and path parameters whose rejection is one of them.

mod path;
mod problem;
mod schema;

pub use path::{PathParams, PathRejected};
pub use problem::{Problem, problem_type};
pub use schema::ProblemDocument;
