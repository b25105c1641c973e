//! palier-core: the pure engine of palier.
//!
//! Money, civil time, program files, events, and the fold of a program's rules over
//! a member's events. No I/O, no clock, no async: instants are arguments, and the
//! same input always gives byte-identical output.

#![deny(clippy::unwrap_used)]

pub mod benefits;
pub mod calendar;
pub mod checkout;
pub mod document;
pub mod engine;
pub mod event;
pub mod history;
pub mod ledger;
pub mod member;
pub mod money;
pub mod notify;
pub mod privacy;
pub mod program;
pub mod promo;
pub mod replay;
pub mod sales;
pub mod short_id;
pub mod split;
pub mod stream;

pub use document::MemberDocument;
pub use engine::Engine;
pub use event::{Event, RejectCode, Rejection, parse_event};
pub use program::{Program, ProgramError};
pub use replay::{Replay, ReplayOutput, replay};
